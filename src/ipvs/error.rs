//! The errors of the IPVS control operations, worded as ipvsadm prints the
//! kernel's errno for each (libipvs `ipvs_strerror`).
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IpvsError {
    /// -A of a service that exists (EEXIST).
    #[error("Service already exists")]
    ServiceExists,
    /// -E/-D/-a/-e/-d on a service that does not exist (ESRCH).
    #[error("No such service")]
    NoService,
    /// -a of a dest that exists (EEXIST).
    #[error("Destination already exists")]
    DestExists,
    /// -e/-d of a dest that does not exist (ENOENT).
    #[error("No such destination")]
    NoDest,
    /// An unknown scheduler or persistence engine (ENOENT).
    #[error("Scheduler or persistence engine not found")]
    SchedulerNotFound,
    /// A value the kernel rejects with EINVAL; the text says which.
    #[error("Invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A value out of range (ERANGE): negative weight, lower threshold above upper.
    #[error("Numerical result out of range: {0}")]
    OutOfRange(&'static str),
}
