//! ipvsadm 1.31's command line, parsed into a [`Command`].
//!
//! The authority is ipvsadm.c (`parse_options`, `process_options`,
//! `generic_opt_check`, `tunnel_opt_check`, `parse_service`,
//! `parse_sched_flags`) and libpopt; ../shared/ipvs-reference.md §1
//! summarises both. Checks run in ipvsadm's order, so a line with several
//! faults reports the one ipvsadm reports, in ipvsadm's words, with its
//! exit code.
//!
//! DPVS's ipvsadm additions that do not collide with ipvsadm's own options
//! are parsed too: `--fullnat` (and `-b`, but only on `-a`/`-e`, where
//! ipvsadm's `-b sched-flags` is illegal anyway), `-P`/`-Q`/`-G` with
//! `-z`/`--laddr` and `-F`/`--ifname`, `-j`/`--synproxy` and
//! `--proxy-protocol`. rvs implements `--fullnat` and the local-address
//! commands with its FULLNAT forwarding and `--proxy-protocol` with the
//! TCP sequence core; `--synproxy` is carried in [`ServiceExtras`].
use std::fmt;
use std::net::IpAddr;

use super::popt::{Arg, Popt, PoptError, Spec};
use super::values::{
    atoi, inet_aton, inet_pton4, inet_pton6, parse_service, string_to_number, strtol_whole,
    truncate,
};
use crate::ipvs::{
    DestConfig, FwdMethod, Netmask, Protocol, SchedFlags, ServiceConfig, ServiceKey,
};

/// The name ipvsadm prints in its "Try ..." line when it is run as
/// `ipvsadm`. rvsadm passes its own argv[0] to [`parse_as`] instead, as
/// ipvsadm prints whatever argv[0] it was started with.
pub const PROGRAM: &str = "ipvsadm";

/// MAX_TIMEOUT: 31 days.
const MAX_TIMEOUT: i64 = 86400 * 31;
/// IPVS_SVC_PERSISTENT_TIMEOUT (libipvs.h); the man page's 300 is wrong.
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 6 * 60;
/// DEF_SCHED.
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// DEF_MCAST_IFN.
pub const DEFAULT_MCAST_INTERFACE: &str = "eth0";
/// The C buffers names are copied into: IP_VS_SCHEDNAME_MAXLEN - 1,
/// IP_VS_PENAME_MAXLEN, IP_VS_IFNAME_MAXLEN - 1 and IFNAMSIZ - 1 bytes.
const SCHED_NAME_MAX: usize = 15;
const PE_NAME_MAX: usize = 16;
const IFNAME_MAX: usize = 15;
/// `sched_flags_arg[128]`.
const SCHED_FLAGS_ARG_MAX: usize = 127;

/// Why a command line was refused, as ipvsadm reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What ipvsadm writes to stderr, without the final newline (one
    /// message, "-6 used before -f\n", has a second newline of its own).
    pub message: String,
    /// ipvsadm's exit status: 2 for its `fail(2, ...)` checks, 255 for the
    /// "Try ..." line and for popt's own errors. Any of them ends a `-R`
    /// (for popt's, ipvsadm's restore loop sees process_options fail).
    pub exit_code: i32,
}

impl ParseError {
    fn fail(message: impl Into<String>) -> ParseError {
        ParseError {
            message: message.into(),
            exit_code: 2,
        }
    }

    fn try_help(prog: &str) -> ParseError {
        ParseError {
            message: format!("Try `{prog} -h' or '{prog} --help' for more information."),
            exit_code: 255,
        }
    }

    fn popt(bad: &str, e: PoptError) -> ParseError {
        ParseError {
            message: format!("{bad}: {}", e.text()),
            exit_code: 255,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// Which listing `-L` prints. ipvsadm's precedence when several are given:
/// stats, rate, thresholds, persistent-conn, tun-info.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListView {
    #[default]
    Default,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    TunInfo,
}

/// `-L`/`-l` and its modifiers; also what a bare `ipvsadm` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListOptions {
    /// `-L -t VIP:port`: that service only, without the version header.
    pub service: Option<ServiceKey>,
    pub numeric: bool,
    pub view: ListView,
    /// `-c`: the connection table.
    pub connections: bool,
    /// `--timeout`: the three protocol timeouts.
    pub timeout: bool,
    /// `--daemon`: the sync daemons.
    pub daemon: bool,
    /// `--exact` / `-X`: counters without K/M/G/T.
    pub exact: bool,
    /// `--nosort`: kernel order.
    pub nosort: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    Master,
    Backup,
}

/// `--start-daemon` / `--stop-daemon` and their options (run by the
/// engine's sync daemons, src/ctl/engine_sync.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    pub state: SyncState,
    /// `--mcast-interface`: "eth0" for a start without one, "" for a stop.
    pub mcast_interface: String,
    /// `--syncid`, 0..=255; 0 when not given.
    pub syncid: u8,
    /// `--sync-maxlen`, 1..=65507.
    pub sync_maxlen: Option<u16>,
    /// `--mcast-group`: an IPv4 or IPv6 multicast address.
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: Option<u16>,
    pub mcast_ttl: Option<u8>,
}

pub use crate::ipvs::tunnel::{Tunnel, TunnelCsum};

pub use crate::ipvs::proxy_proto::ProxyProtocol;

/// Service settings from DPVS that ipvsadm has no word for. Like the rest
/// of `-E`, an edit sends them whole: `-E` without `-j enable` turns the
/// SYN proxy off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServiceExtras {
    /// `-j` / `--synproxy enable|disable`.
    pub synproxy: bool,
    pub proxy_protocol: ProxyProtocol,
}

/// One parsed ipvsadm command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A`: the complete service; unspecified fields have their defaults.
    AddService(ServiceConfig, ServiceExtras),
    /// `-E`: as `-A`, so a missing `-p` removes persistence.
    EditService(ServiceConfig, ServiceExtras),
    DeleteService(ServiceKey),
    /// `-C`.
    Clear,
    /// `-R`: read commands from stdin, one per line ([`parse_restore_line`]).
    Restore,
    /// `-S [-n]`.
    Save {
        numeric: bool,
    },
    /// `-a`: the tunnel is Some exactly when the dest forwards by `-i`.
    AddDest(ServiceKey, DestConfig, Option<Tunnel>),
    /// `-e`: the complete dest, as `-a`.
    EditDest(ServiceKey, DestConfig, Option<Tunnel>),
    /// `-d`: the dest's address and port.
    DeleteDest(ServiceKey, IpAddr, u16),
    List(ListOptions),
    /// `-Z [service]`.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`; 0 leaves that timeout unchanged.
    SetTimeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    StartDaemon(DaemonConfig),
    StopDaemon(DaemonConfig),
    /// `-h`: usage on stdout, exit 0, whatever follows.
    Help,
    /// `-v`: the version line, exit 0, whatever follows.
    Version,
    /// DPVS `-P`: add a FULLNAT local address to a service.
    AddLaddr {
        service: ServiceKey,
        laddr: IpAddr,
        ifname: String,
    },
    /// DPVS `-Q`.
    DelLaddr {
        service: ServiceKey,
        laddr: IpAddr,
        ifname: String,
    },
    /// DPVS `-G [service]`.
    GetLaddr(Option<ServiceKey>),
}

/// Parses an argv without argv[0], printing "ipvsadm" in the "Try ..."
/// line. No arguments at all is ipvsadm's plain listing.
pub fn parse(args: &[String]) -> Result<Command, ParseError> {
    parse_as(PROGRAM, args)
}

/// [`parse`], with the program name ipvsadm would take from argv[0].
pub fn parse_as(prog: &str, args: &[String]) -> Result<Command, ParseError> {
    if args.is_empty() {
        return Ok(Command::List(ListOptions::default()));
    }
    Parser::new(prog, false).run(args)
}

/// One line of `-R` input: None for a line with nothing to do. As
/// ipvsadm's config_stream, words are split on space, tab, CR and LF and
/// every word "ipvsadm" is dropped, wherever it stands. There are no
/// comments: "# x" is a line whose first word is not an option, so it
/// fails with the "Try ..." message. `-R` inside `-R` fails the same way.
pub fn parse_restore_line(line: &str) -> Option<Result<Command, ParseError>> {
    parse_restore_line_as(PROGRAM, line)
}

/// [`parse_restore_line`], with the program name of the restoring process.
pub fn parse_restore_line_as(prog: &str, line: &str) -> Option<Result<Command, ParseError>> {
    let words: Vec<String> = line
        .split([' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty() && *w != "ipvsadm")
        .map(str::to_string)
        .collect();
    if words.is_empty() {
        return None;
    }
    Some(Parser::new(prog, true).run(&words))
}

/// The rows of ipvsadm's `commands_v_options` (its CMD_*), plus DPVS's
/// local-address commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
    AddLaddr,
    DelLaddr,
    GetLaddr,
}

impl Cmd {
    /// `cmdnames[]`.
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::AddLaddr => "add-laddr",
            Cmd::DelLaddr => "del-laddr",
            Cmd::GetLaddr => "get-laddr",
        }
    }
}

/// The columns of `commands_v_options` (OPTC_*), in ipvsadm's order, which
/// is the order violations are reported in; then DPVS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Mcast,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    OnePacket,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    Laddr,
    Ifname,
    Synproxy,
    ProxyProtocol,
}

const COLS: [Col; 38] = [
    Col::Numeric,
    Col::Connection,
    Col::Service,
    Col::Scheduler,
    Col::Persistent,
    Col::Netmask,
    Col::Server,
    Col::Forward,
    Col::Weight,
    Col::UThreshold,
    Col::LThreshold,
    Col::Mcast,
    Col::Timeout,
    Col::Daemon,
    Col::Stats,
    Col::Rate,
    Col::Thresholds,
    Col::PersistentConn,
    Col::NoSort,
    Col::SyncId,
    Col::Exact,
    Col::OnePacket,
    Col::Pe,
    Col::SchedFlags,
    Col::McastGroup,
    Col::McastPort,
    Col::McastTtl,
    Col::SyncMaxlen,
    Col::TunInfo,
    Col::TunType,
    Col::TunPort,
    Col::TunNocsum,
    Col::TunCsum,
    Col::TunRemcsum,
    Col::Laddr,
    Col::Ifname,
    Col::Synproxy,
    Col::ProxyProtocol,
];

impl Col {
    fn bit(self) -> u64 {
        1 << (self as u32)
    }

    /// `optnames[]` (DPVS's for its own columns).
    fn name(self) -> &'static str {
        match self {
            Col::Numeric => "numeric",
            Col::Connection => "connection",
            Col::Service => "service-address",
            Col::Scheduler => "scheduler",
            Col::Persistent => "persistent",
            Col::Netmask => "netmask",
            Col::Server => "real-server",
            Col::Forward => "forwarding-method",
            Col::Weight => "weight",
            Col::UThreshold => "u-threshold",
            Col::LThreshold => "l-threshold",
            Col::Mcast => "mcast-interface",
            Col::Timeout => "timeout",
            Col::Daemon => "daemon",
            Col::Stats => "stats",
            Col::Rate => "rate",
            Col::Thresholds => "thresholds",
            Col::PersistentConn => "persistent-conn",
            Col::NoSort => "nosort",
            Col::SyncId => "syncid",
            Col::Exact => "exact",
            Col::OnePacket => "ops",
            Col::Pe => "pe",
            Col::SchedFlags => "sched-flags",
            Col::McastGroup => "mcast-group",
            Col::McastPort => "mcast-port",
            Col::McastTtl => "mcast-ttl",
            Col::SyncMaxlen => "sync-maxlen",
            Col::TunInfo => "tun-info",
            Col::TunType => "tun-type",
            Col::TunPort => "tun-port",
            Col::TunNocsum => "tun-nocsum",
            Col::TunCsum => "tun-csum",
            Col::TunRemcsum => "tun-remcsum",
            Col::Laddr => "local-address",
            Col::Ifname => "ifname",
            Col::Synproxy => "synproxy",
            Col::ProxyProtocol => "proxy-protocol",
        }
    }
}

/// A cell of `commands_v_options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// 'x'
    Illegal,
    /// ' '
    Optional,
    /// '+'
    Required,
    /// '1': at most one of the '1' options of the row.
    Exclusive,
}

/// The table, row by row, as the cells that are not 'x'.
fn rule(cmd: Cmd, col: Col) -> Rule {
    use Col as C;
    use Rule::{Exclusive as One, Optional as Opt, Required as Req};
    let row: &[(Col, Rule)] = match cmd {
        Cmd::Add | Cmd::Edit => &[
            (C::Service, Req),
            (C::Scheduler, Opt),
            (C::Persistent, Opt),
            (C::Netmask, Opt),
            (C::OnePacket, Opt),
            (C::Pe, Opt),
            (C::SchedFlags, Opt),
            (C::Synproxy, Opt),
            (C::ProxyProtocol, Opt),
        ],
        Cmd::Del => &[(C::Service, Req)],
        Cmd::DelDest => &[(C::Service, Req), (C::Server, Req)],
        Cmd::Flush | Cmd::Timeout | Cmd::Restore => &[],
        Cmd::List => &[
            (C::Numeric, Opt),
            (C::Connection, One),
            (C::Service, One),
            (C::Timeout, One),
            (C::Daemon, One),
            (C::Stats, Opt),
            (C::Rate, Opt),
            (C::Thresholds, Opt),
            (C::PersistentConn, Opt),
            (C::NoSort, Opt),
            (C::SyncId, Opt),
            (C::Exact, Opt),
            (C::TunInfo, Opt),
        ],
        Cmd::AddDest | Cmd::EditDest => &[
            (C::Service, Req),
            (C::Server, Req),
            (C::Forward, Opt),
            (C::Weight, Opt),
            (C::UThreshold, Opt),
            (C::LThreshold, Opt),
            (C::TunType, Opt),
            (C::TunPort, Opt),
            (C::TunNocsum, Opt),
            (C::TunCsum, Opt),
            (C::TunRemcsum, Opt),
        ],
        Cmd::StartDaemon => &[
            (C::Mcast, Opt),
            (C::SyncId, Opt),
            (C::McastGroup, Opt),
            (C::McastPort, Opt),
            (C::McastTtl, Opt),
            (C::SyncMaxlen, Opt),
        ],
        Cmd::StopDaemon => &[(C::SyncId, Opt)],
        Cmd::Save => &[(C::Numeric, Opt)],
        Cmd::Zero | Cmd::GetLaddr => &[(C::Service, Opt)],
        Cmd::AddLaddr | Cmd::DelLaddr => &[(C::Service, Req), (C::Laddr, Req), (C::Ifname, Req)],
    };
    row.iter()
        .find(|(c, _)| *c == col)
        .map_or(Rule::Illegal, |(_, r)| *r)
}

/// What popt hands back for each option (the `val` of ipvsadm's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    AddLaddr,
    DelLaddr,
    GetLaddr,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    Fullnat,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    Laddr,
    Ifname,
    Synproxy,
    ProxyProtocol,
}

const fn spec(long: &'static str, short: char, arg: Arg, tag: Opt) -> Spec<Opt> {
    Spec {
        long,
        short,
        arg,
        tag,
    }
}

/// ipvsadm's popt table, in its order (the first of two "list" entries
/// wins, as in popt), then DPVS's additions.
const OPTIONS: &[Spec<Opt>] = {
    use Arg::{None as N, Optional as O, Required as R};
    &[
        spec("add-service", 'A', N, Opt::AddService),
        spec("edit-service", 'E', N, Opt::EditService),
        spec("delete-service", 'D', N, Opt::DeleteService),
        spec("clear", 'C', N, Opt::Clear),
        spec("list", 'L', N, Opt::List),
        spec("list", 'l', N, Opt::List),
        spec("zero", 'Z', N, Opt::Zero),
        spec("add-server", 'a', N, Opt::AddServer),
        spec("edit-server", 'e', N, Opt::EditServer),
        spec("delete-server", 'd', N, Opt::DeleteServer),
        spec("set", '\0', N, Opt::Set),
        spec("help", 'h', N, Opt::Help),
        spec("version", 'v', N, Opt::Version),
        spec("restore", 'R', N, Opt::Restore),
        spec("save", 'S', N, Opt::Save),
        spec("start-daemon", '\0', R, Opt::StartDaemon),
        spec("stop-daemon", '\0', R, Opt::StopDaemon),
        spec("tcp-service", 't', R, Opt::Tcp),
        spec("udp-service", 'u', R, Opt::Udp),
        spec("sctp-service", '\0', R, Opt::Sctp),
        spec("fwmark-service", 'f', R, Opt::Fwmark),
        spec("scheduler", 's', R, Opt::Scheduler),
        spec("persistent", 'p', O, Opt::Persistent),
        spec("netmask", 'M', R, Opt::Netmask),
        spec("real-server", 'r', R, Opt::RealServer),
        spec("masquerading", 'm', N, Opt::Masquerading),
        spec("ipip", 'i', N, Opt::Ipip),
        spec("gatewaying", 'g', N, Opt::Gatewaying),
        spec("weight", 'w', R, Opt::Weight),
        spec("u-threshold", 'x', R, Opt::UThreshold),
        spec("l-threshold", 'y', R, Opt::LThreshold),
        spec("numeric", 'n', N, Opt::Numeric),
        spec("connection", 'c', N, Opt::Connection),
        spec("mcast-interface", '\0', R, Opt::McastInterface),
        spec("syncid", '\0', R, Opt::SyncId),
        spec("timeout", '\0', N, Opt::Timeout),
        spec("daemon", '\0', N, Opt::Daemon),
        spec("stats", '\0', N, Opt::Stats),
        spec("rate", '\0', N, Opt::Rate),
        spec("thresholds", '\0', N, Opt::Thresholds),
        spec("persistent-conn", '\0', N, Opt::PersistentConn),
        spec("nosort", '\0', N, Opt::NoSort),
        spec("sort", '\0', N, Opt::Sort),
        spec("exact", 'X', N, Opt::Exact),
        spec("ipv6", '6', N, Opt::Ipv6),
        spec("ops", 'o', N, Opt::Ops),
        spec("pe", '\0', R, Opt::Pe),
        spec("sched-flags", 'b', R, Opt::SchedFlags),
        spec("mcast-group", '\0', R, Opt::McastGroup),
        spec("mcast-port", '\0', R, Opt::McastPort),
        spec("mcast-ttl", '\0', R, Opt::McastTtl),
        spec("sync-maxlen", '\0', R, Opt::SyncMaxlen),
        spec("tun-info", '\0', N, Opt::TunInfo),
        spec("tun-type", '\0', R, Opt::TunType),
        spec("tun-port", '\0', R, Opt::TunPort),
        spec("tun-nocsum", '\0', N, Opt::TunNocsum),
        spec("tun-csum", '\0', N, Opt::TunCsum),
        spec("tun-remcsum", '\0', N, Opt::TunRemcsum),
        spec("add-laddr", 'P', N, Opt::AddLaddr),
        spec("del-laddr", 'Q', N, Opt::DelLaddr),
        spec("get-laddr", 'G', N, Opt::GetLaddr),
        spec("fullnat", '\0', N, Opt::Fullnat),
        spec("laddr", 'z', R, Opt::Laddr),
        spec("ifname", 'F', R, Opt::Ifname),
        spec("synproxy", 'j', R, Opt::Synproxy),
        spec("proxy-protocol", '\0', R, Opt::ProxyProtocol),
    ]
};

/// Every option of the table, as (long name, short letter or '\0'), for
/// the test that proves each one does something.
#[cfg(test)]
pub(crate) fn option_table() -> impl Iterator<Item = (&'static str, char)> {
    OPTIONS.iter().map(|s| (s.long, s.short))
}

/// On `-a`/`-e`, `-b` is DPVS's `--fullnat`.
const FULLNAT_SHORT: Spec<Opt> = spec("fullnat", 'b', Arg::None, Opt::Fullnat);

fn find_option(name: Result<&str, char>, dest_command: bool) -> Option<Spec<Opt>> {
    match name {
        Err('b') if dest_command => Some(FULLNAT_SHORT),
        Err('\0') => None,
        Err(c) => OPTIONS.iter().find(|s| s.short == c).copied(),
        Ok(long) => OPTIONS
            .iter()
            .find(|s| !s.long.is_empty() && s.long == long)
            .copied(),
    }
}

/// `--tun-type`'s values (IP_VS_CONN_F_TUNNEL_TYPE_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TunType {
    Ipip,
    Gue,
    Gre,
}

impl TunType {
    fn name(self) -> &'static str {
        match self {
            TunType::Ipip => "ipip",
            TunType::Gue => "gue",
            TunType::Gre => "gre",
        }
    }

    /// `tunnel_types_v_options`, over tun-port, nocsum, csum, remcsum.
    fn rule(self, col: Col) -> Rule {
        use Rule::{Exclusive as One, Illegal as X, Required as Req};
        let row = match self {
            TunType::Ipip => [X, X, X, X],
            TunType::Gue => [Req, One, One, One],
            TunType::Gre => [X, One, One, X],
        };
        match col {
            Col::TunPort => row[0],
            Col::TunNocsum => row[1],
            Col::TunCsum => row[2],
            Col::TunRemcsum => row[3],
            _ => X,
        }
    }
}

const TUN_COLS: [Col; 4] = [Col::TunPort, Col::TunNocsum, Col::TunCsum, Col::TunRemcsum];

/// ipvsadm's `struct ipvs_command_entry` while options are read: fields
/// change in argv order, and some options read fields others set (`-r`
/// takes the service's port and protocol as they are when it is read;
/// `-M` is a prefix length only once an IPv6 service is known).
struct Parser<'p> {
    prog: &'p str,
    restoring: bool,
    cmd: Cmd,
    options: u64,
    svc_v6: Option<bool>,
    proto: Option<Protocol>,
    vaddr: Option<IpAddr>,
    vport: u16,
    fwmark: u32,
    /// A host-order IPv4 mask, or a prefix length once the service is IPv6.
    netmask: u32,
    sched: String,
    persistent: Option<u32>,
    one_packet: bool,
    pe: String,
    sched_flags_arg: String,
    dest: Option<(IpAddr, u16)>,
    fwd: FwdMethod,
    weight: i32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: TunType,
    tun_port: u16,
    tun_csum: TunnelCsum,
    daemon: DaemonConfig,
    laddr: Option<IpAddr>,
    ifname: String,
    extras: ServiceExtras,
}

impl<'p> Parser<'p> {
    fn new(prog: &'p str, restoring: bool) -> Parser<'p> {
        Parser {
            prog,
            restoring,
            cmd: Cmd::Flush,
            options: 0,
            svc_v6: None,
            proto: None,
            vaddr: None,
            vport: 0,
            fwmark: 0,
            netmask: u32::MAX,
            sched: String::new(),
            persistent: None,
            one_packet: false,
            pe: String::new(),
            sched_flags_arg: String::new(),
            dest: None,
            fwd: FwdMethod::DirectRoute,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunType::Ipip,
            tun_port: 0,
            tun_csum: TunnelCsum::NoCsum,
            daemon: DaemonConfig {
                state: SyncState::Master,
                mcast_interface: String::new(),
                syncid: 0,
                sync_maxlen: None,
                mcast_group: None,
                mcast_port: None,
                mcast_ttl: None,
            },
            laddr: None,
            ifname: String::new(),
            extras: ServiceExtras::default(),
        }
    }

    fn has(&self, col: Col) -> bool {
        self.options & col.bit() != 0
    }

    /// `set_option`: every option counted in the table may appear once.
    fn set(&mut self, col: Col) -> Result<(), ParseError> {
        if self.has(col) {
            return Err(ParseError::fail(format!(
                "multiple '{}' options specified",
                col.name()
            )));
        }
        self.options |= col.bit();
        Ok(())
    }

    fn run(mut self, args: &[String]) -> Result<Command, ParseError> {
        let mut popt = Popt::new(args);
        let first = match popt.next_opt(|n| find_option(n, false)) {
            Ok(Some(first)) => first,
            _ => return Err(ParseError::try_help(self.prog)),
        };
        self.cmd = match first {
            (Opt::AddService, _) => Cmd::Add,
            (Opt::EditService, _) => Cmd::Edit,
            (Opt::DeleteService, _) => Cmd::Del,
            (Opt::AddServer, _) => Cmd::AddDest,
            (Opt::EditServer, _) => Cmd::EditDest,
            (Opt::DeleteServer, _) => Cmd::DelDest,
            (Opt::Clear, _) => Cmd::Flush,
            (Opt::List, _) => Cmd::List,
            (Opt::Zero, _) => Cmd::Zero,
            (Opt::Set, _) => Cmd::Timeout,
            (Opt::Restore, _) => Cmd::Restore,
            (Opt::Save, _) => Cmd::Save,
            (Opt::AddLaddr, _) => Cmd::AddLaddr,
            (Opt::DelLaddr, _) => Cmd::DelLaddr,
            (Opt::GetLaddr, _) => Cmd::GetLaddr,
            (Opt::StartDaemon, v) => {
                self.daemon.state = sync_state(v)
                    .ok_or_else(|| ParseError::fail("illegal start-daemon parameter specified"))?;
                Cmd::StartDaemon
            }
            (Opt::StopDaemon, v) => {
                // ipvsadm's own words, underscore included.
                self.daemon.state = sync_state(v)
                    .ok_or_else(|| ParseError::fail("illegal start_daemon specified"))?;
                Cmd::StopDaemon
            }
            (Opt::Help, _) => return Ok(Command::Help),
            (Opt::Version, _) => return Ok(Command::Version),
            _ => return Err(ParseError::try_help(self.prog)),
        };

        let dest_command = matches!(self.cmd, Cmd::AddDest | Cmd::EditDest);
        loop {
            match popt.next_opt(|n| find_option(n, dest_command)) {
                Ok(None) => break,
                Ok(Some((opt, value))) => {
                    if !self.option(opt, value)? {
                        return Err(ParseError::fail(format!(
                            "invalid option `{}'",
                            popt.bad_option()
                        )));
                    }
                }
                Err(e) => return Err(ParseError::popt(popt.bad_option(), e)),
            }
        }

        let mut timeouts = [0u32; 3];
        if self.cmd == Cmd::Timeout {
            let (Some(tcp), Some(fin), Some(udp)) =
                (popt.next_arg(), popt.next_arg(), popt.next_arg())
            else {
                return Err(ParseError::fail("--set option requires 3 timeout values"));
            };
            timeouts = [
                parse_timeout(tcp, 0)?,
                parse_timeout(fin, 0)?,
                parse_timeout(udp, 0)?,
            ];
        }
        if let Some(arg) = popt.next_arg() {
            return Err(ParseError::fail(format!("unexpected argument {arg}")));
        }
        let sched_flags = if self.sched_flags_arg.is_empty() {
            SchedFlags::default()
        } else {
            parse_sched_flags(&self.sched, &self.sched_flags_arg)?
        };

        self.generic_opt_check()?;
        self.finish(sched_flags, timeouts)
    }

    /// One option after the command. Ok(false): not an option this place
    /// takes ("invalid option"), which is where a second command lands.
    fn option(&mut self, opt: Opt, value: Option<&str>) -> Result<bool, ParseError> {
        let v = value.unwrap_or("");
        match opt {
            Opt::Tcp | Opt::Udp | Opt::Sctp => {
                self.set(Col::Service)?;
                let proto = match opt {
                    Opt::Tcp => Protocol::Tcp,
                    Opt::Udp => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                self.proto = Some(proto);
                let (addr, port) = parse_service(v, Some(proto)).ok_or_else(|| {
                    ParseError::fail("illegal virtual server address[:port] specified")
                })?;
                self.vaddr = Some(addr);
                self.svc_v6 = Some(addr.is_ipv6());
                if addr.is_ipv6() {
                    self.netmask = 128;
                }
                if let Some(p) = port {
                    self.vport = p;
                }
            }
            Opt::Fwmark => {
                self.set(Col::Service)?;
                self.svc_v6 = Some(false);
                self.proto = Some(Protocol::Tcp);
                self.fwmark = strtol_whole(v)
                    .filter(|n| *n > 0)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        ParseError::fail(format!("invalid fwmark value `{v}' specified"))
                    })?;
            }
            Opt::Scheduler => {
                self.set(Col::Scheduler)?;
                self.sched = truncate(v, SCHED_NAME_MAX);
            }
            Opt::Persistent => {
                self.set(Col::Persistent)?;
                self.persistent = Some(match value {
                    None => DEFAULT_PERSISTENT_TIMEOUT,
                    Some(t) => parse_timeout(t, 1)?,
                });
            }
            Opt::Netmask => {
                self.set(Col::Netmask)?;
                if self.svc_v6 == Some(true) {
                    // atoi, then stored in a u32: "-1" is 4294967295.
                    let len = atoi(v) as u32;
                    if !(1..=128).contains(&len) {
                        return Err(ParseError::fail("illegal ipv6 netmask specified"));
                    }
                    self.netmask = len;
                } else {
                    let mask = inet_aton(v).ok_or_else(|| {
                        ParseError::fail("illegal virtual server persistent mask specified")
                    })?;
                    self.netmask = u32::from(mask);
                }
            }
            Opt::RealServer => {
                self.set(Col::Server)?;
                let (addr, port) = parse_service(v, self.proto).ok_or_else(|| {
                    ParseError::fail("illegal real server address[:port] specified")
                })?;
                self.dest = Some((addr, port.unwrap_or(self.vport)));
            }
            Opt::Ipip | Opt::Gatewaying | Opt::Masquerading | Opt::Fullnat => {
                self.set(Col::Forward)?;
                self.fwd = match opt {
                    Opt::Ipip => FwdMethod::Tunnel,
                    Opt::Gatewaying => FwdMethod::DirectRoute,
                    Opt::Masquerading => FwdMethod::Masq,
                    _ => FwdMethod::FullNat,
                };
            }
            Opt::Weight => {
                self.set(Col::Weight)?;
                self.weight = number(v, 0, 65535, "illegal weight specified")?;
            }
            Opt::UThreshold => {
                self.set(Col::UThreshold)?;
                self.u_threshold = number(v, 0, i32::MAX.into(), "illegal u_threshold specified")?;
            }
            Opt::LThreshold => {
                self.set(Col::LThreshold)?;
                self.l_threshold = number(v, 0, i32::MAX.into(), "illegal l_threshold specified")?;
            }
            Opt::Connection => self.set(Col::Connection)?,
            Opt::Numeric => self.set(Col::Numeric)?,
            Opt::McastInterface => {
                self.set(Col::Mcast)?;
                self.daemon.mcast_interface = truncate(v, IFNAME_MAX);
            }
            Opt::SyncId => {
                self.set(Col::SyncId)?;
                self.daemon.syncid = number(v, 0, 255, "illegal syncid specified")?;
            }
            Opt::Timeout => self.set(Col::Timeout)?,
            Opt::Daemon => self.set(Col::Daemon)?,
            Opt::Stats => self.set(Col::Stats)?,
            Opt::Rate => self.set(Col::Rate)?,
            Opt::Thresholds => self.set(Col::Thresholds)?,
            Opt::PersistentConn => self.set(Col::PersistentConn)?,
            Opt::NoSort => self.set(Col::NoSort)?,
            // "does nothing, for backwards compatibility", and is in no
            // table, so it is legal anywhere and may repeat.
            Opt::Sort => {}
            Opt::Exact => self.set(Col::Exact)?,
            // Not in the table either: legal with any command, repeatable.
            Opt::Ipv6 => {
                if self.fwmark == 0 {
                    return Err(ParseError::fail("-6 used before -f\n"));
                }
                self.svc_v6 = Some(true);
                self.netmask = 128;
            }
            Opt::Ops => {
                self.set(Col::OnePacket)?;
                self.one_packet = true;
            }
            Opt::Pe => {
                self.set(Col::Pe)?;
                self.pe = truncate(v, PE_NAME_MAX);
            }
            Opt::SchedFlags => {
                self.set(Col::SchedFlags)?;
                self.sched_flags_arg = truncate(v, SCHED_FLAGS_ARG_MAX);
            }
            Opt::McastGroup => {
                self.set(Col::McastGroup)?;
                let group = if v.contains(':') {
                    inet_pton6(v)
                        .filter(|a| a.is_multicast())
                        .map(IpAddr::V6)
                        .ok_or_else(|| {
                            ParseError::fail(format!("invalid IPv6 mcast-group `{v}'"))
                        })?
                } else {
                    inet_pton4(v)
                        .filter(|a| a.is_multicast())
                        .map(IpAddr::V4)
                        .ok_or_else(|| {
                            ParseError::fail(format!("invalid IPv4 mcast-group `{v}'"))
                        })?
                };
                self.daemon.mcast_group = Some(group);
            }
            Opt::McastPort => {
                self.set(Col::McastPort)?;
                self.daemon.mcast_port = Some(number(v, 1, 65535, "illegal mcast-port specified")?);
            }
            Opt::McastTtl => {
                self.set(Col::McastTtl)?;
                self.daemon.mcast_ttl = Some(number(v, 1, 255, "illegal mcast-ttl specified")?);
            }
            Opt::SyncMaxlen => {
                self.set(Col::SyncMaxlen)?;
                // 65535 less the IPv4 and UDP headers.
                self.daemon.sync_maxlen = Some(number(
                    v,
                    1,
                    65535 - 20 - 8,
                    "illegal sync-maxlen specified",
                )?);
            }
            Opt::TunInfo => self.set(Col::TunInfo)?,
            Opt::TunType => {
                self.set(Col::TunType)?;
                self.tun_type = match v {
                    "ipip" => TunType::Ipip,
                    "gue" => TunType::Gue,
                    "gre" => TunType::Gre,
                    _ => return Err(ParseError::fail("illegal tunnel type specified")),
                };
            }
            Opt::TunPort => {
                self.set(Col::TunPort)?;
                self.tun_port = number(v, 1, 65535, "illegal tunnel port specified")?;
            }
            Opt::TunNocsum => {
                self.set(Col::TunNocsum)?;
                self.tun_csum = TunnelCsum::NoCsum;
            }
            Opt::TunCsum => {
                self.set(Col::TunCsum)?;
                self.tun_csum = TunnelCsum::Csum;
            }
            Opt::TunRemcsum => {
                self.set(Col::TunRemcsum)?;
                self.tun_csum = TunnelCsum::RemCsum;
            }
            Opt::Laddr => {
                self.set(Col::Laddr)?;
                let (addr, _) = parse_service(v, None)
                    .ok_or_else(|| ParseError::fail("illegal local address"))?;
                self.laddr = Some(addr);
            }
            Opt::Ifname => {
                self.set(Col::Ifname)?;
                self.ifname = truncate(v, IFNAME_MAX);
            }
            Opt::Synproxy => {
                self.set(Col::Synproxy)?;
                // DPVS compares the first bytes only.
                self.extras.synproxy = if v.starts_with("enable") {
                    true
                } else if v.starts_with("disable") {
                    false
                } else {
                    return Err(ParseError::fail(
                        "synproxy switch must be enable or disable\n",
                    ));
                };
            }
            Opt::ProxyProtocol => {
                self.set(Col::ProxyProtocol)?;
                self.extras.proxy_protocol = match v.to_ascii_lowercase().as_str() {
                    "v1" => ProxyProtocol::V1,
                    "v2" => ProxyProtocol::V2,
                    "v1-insecure" => ProxyProtocol::V1Insecure,
                    "v2-insecure" => ProxyProtocol::V2Insecure,
                    _ => ProxyProtocol::Disable,
                };
            }
            Opt::AddService
            | Opt::EditService
            | Opt::DeleteService
            | Opt::Clear
            | Opt::List
            | Opt::Zero
            | Opt::AddServer
            | Opt::EditServer
            | Opt::DeleteServer
            | Opt::Set
            | Opt::Help
            | Opt::Version
            | Opt::Restore
            | Opt::Save
            | Opt::StartDaemon
            | Opt::StopDaemon
            | Opt::AddLaddr
            | Opt::DelLaddr
            | Opt::GetLaddr => return Ok(false),
        }
        Ok(true)
    }

    /// `generic_opt_check`: the first offending column, in table order.
    fn generic_opt_check(&self) -> Result<(), ParseError> {
        let cmd = self.cmd.name();
        let mut first_exclusive: Option<Col> = None;
        for col in COLS {
            let r = rule(self.cmd, col);
            if !self.has(col) {
                if r == Rule::Required {
                    return Err(ParseError::fail(format!(
                        "You need to supply the '{}' option for the '{cmd}' command",
                        col.name()
                    )));
                }
                continue;
            }
            match r {
                Rule::Illegal => {
                    return Err(ParseError::fail(format!(
                        "Illegal '{}' option with the '{cmd}' command",
                        col.name()
                    )))
                }
                Rule::Exclusive => match first_exclusive {
                    None => first_exclusive = Some(col),
                    Some(last) => {
                        return Err(ParseError::fail(format!(
                            "The option '{}' conflicts with the '{}' option in the '{cmd}' command",
                            col.name(),
                            last.name()
                        )))
                    }
                },
                Rule::Optional | Rule::Required => {}
            }
        }
        Ok(())
    }

    /// `tunnel_opt_check` for a `-i` dest.
    fn tunnel_opt_check(&self) -> Result<(), ParseError> {
        let tun = self.tun_type.name();
        let mut first_exclusive: Option<Col> = None;
        for col in TUN_COLS {
            let r = self.tun_type.rule(col);
            if !self.has(col) {
                if r == Rule::Required {
                    return Err(ParseError::fail(format!(
                        "You need to supply the '{}' option for the '{tun}' tunnel type",
                        col.name()
                    )));
                }
                continue;
            }
            match r {
                Rule::Illegal => {
                    return Err(ParseError::fail(format!(
                        "Illegal '{}' option with the '{tun}' tunnel type",
                        col.name()
                    )))
                }
                Rule::Exclusive => match first_exclusive {
                    None => first_exclusive = Some(col),
                    Some(last) => {
                        return Err(ParseError::fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{tun}' tunnel type",
                        col.name(),
                        last.name()
                    )))
                    }
                },
                Rule::Optional | Rule::Required => {}
            }
        }
        Ok(())
    }

    fn key(&self) -> Option<ServiceKey> {
        if !self.has(Col::Service) {
            return None;
        }
        if self.fwmark != 0 {
            return Some(ServiceKey::Fwmark {
                mark: self.fwmark,
                ipv6: self.svc_v6 == Some(true),
            });
        }
        Some(ServiceKey::Addr {
            proto: self.proto?,
            addr: self.vaddr?,
            port: self.vport,
        })
    }

    /// The table guarantees a service where this is called; the error is
    /// for the impossible case, so that no input can panic.
    fn required_key(&self) -> Result<ServiceKey, ParseError> {
        self.key()
            .ok_or_else(|| ParseError::fail("You need to supply the 'service-address' option"))
    }

    fn missing_server(&self) -> ParseError {
        ParseError::fail(format!(
            "You need to supply the 'real-server' option for the '{}' command",
            self.cmd.name()
        ))
    }

    /// `process_options` after `generic_opt_check`, and the command.
    fn finish(self, sched_flags: SchedFlags, timeouts: [u32; 3]) -> Result<Command, ParseError> {
        match self.cmd {
            Cmd::Add | Cmd::Edit => {
                let key = self.required_key()?;
                if self.fwmark == 0 && self.vport == 0 && self.persistent.is_none() {
                    return Err(ParseError::fail(
                        "Zero port specified for non-persistent service",
                    ));
                }
                if self.one_packet && self.fwmark == 0 && self.proto != Some(Protocol::Udp) {
                    return Err(ParseError::fail(
                        "One-Packet Scheduling is only for UDP virtual services",
                    ));
                }
                let scheduler = if self.sched.is_empty() {
                    DEFAULT_SCHEDULER.to_string()
                } else {
                    self.sched.clone()
                };
                let netmask = if self.svc_v6 == Some(true) {
                    Netmask::V6(u8::try_from(self.netmask).unwrap_or(128))
                } else {
                    Netmask::V4(self.netmask)
                };
                let cfg = ServiceConfig {
                    key,
                    scheduler,
                    sched_flags,
                    persistent: self.persistent,
                    netmask,
                    one_packet: self.one_packet,
                    pe: Some(self.pe.clone()).filter(|p| !p.is_empty()),
                    proxy_protocol: self.extras.proxy_protocol,
                };
                Ok(if self.cmd == Cmd::Add {
                    Command::AddService(cfg, self.extras)
                } else {
                    Command::EditService(cfg, self.extras)
                })
            }
            Cmd::AddDest | Cmd::EditDest => {
                let key = self.required_key()?;
                let Some((addr, mut port)) = self.dest else {
                    return Err(self.missing_server());
                };
                // DR and TUN cannot map ports, so ipvsadm quietly sends the
                // service's port (not for fwmark services, which have none).
                if self.fwmark == 0
                    && matches!(self.fwd, FwdMethod::Tunnel | FwdMethod::DirectRoute)
                {
                    port = self.vport;
                }
                // DPVS's FULLNAT also crosses families (NAT64).
                if addr.is_ipv6() != (self.svc_v6 == Some(true))
                    && !matches!(self.fwd, FwdMethod::Tunnel | FwdMethod::FullNat)
                {
                    return Err(ParseError::fail(
                        "Different address family is allowed only for tunneling servers",
                    ));
                }
                let tun_cols = [
                    Col::TunType,
                    Col::TunPort,
                    Col::TunNocsum,
                    Col::TunCsum,
                    Col::TunRemcsum,
                ];
                if self.fwd != FwdMethod::Tunnel && tun_cols.iter().any(|c| self.has(*c)) {
                    return Err(ParseError::fail(
                        "Tunnel options conflict with forward method",
                    ));
                }
                self.tunnel_opt_check()?;
                let tunnel = (self.fwd == FwdMethod::Tunnel).then_some(match self.tun_type {
                    TunType::Ipip => Tunnel::Ipip,
                    TunType::Gue => Tunnel::Gue {
                        port: self.tun_port,
                        csum: self.tun_csum,
                    },
                    TunType::Gre => Tunnel::Gre {
                        csum: self.tun_csum,
                    },
                });
                let dest = DestConfig {
                    addr,
                    port,
                    fwd: self.fwd,
                    weight: self.weight,
                    u_threshold: self.u_threshold,
                    l_threshold: self.l_threshold,
                };
                Ok(if self.cmd == Cmd::AddDest {
                    Command::AddDest(key, dest, tunnel)
                } else {
                    Command::EditDest(key, dest, tunnel)
                })
            }
            Cmd::DelDest => {
                let key = self.required_key()?;
                let Some((addr, port)) = self.dest else {
                    return Err(self.missing_server());
                };
                Ok(Command::DeleteDest(key, addr, port))
            }
            Cmd::Del => Ok(Command::DeleteService(self.required_key()?)),
            Cmd::List => {
                let conflict = (self.has(Col::Connection)
                    || self.has(Col::Timeout)
                    || self.has(Col::Daemon))
                    && (self.has(Col::Stats) || self.has(Col::Rate) || self.has(Col::Thresholds))
                    || (self.has(Col::Timeout) || self.has(Col::Daemon))
                        && self.has(Col::PersistentConn);
                if conflict {
                    return Err(ParseError::fail("options conflicts in the list command"));
                }
                let view = [
                    (Col::Stats, ListView::Stats),
                    (Col::Rate, ListView::Rate),
                    (Col::Thresholds, ListView::Thresholds),
                    (Col::PersistentConn, ListView::PersistentConn),
                    (Col::TunInfo, ListView::TunInfo),
                ]
                .into_iter()
                .find(|(c, _)| self.has(*c))
                .map_or(ListView::Default, |(_, v)| v);
                Ok(Command::List(ListOptions {
                    service: self.key(),
                    numeric: self.has(Col::Numeric),
                    view,
                    connections: self.has(Col::Connection),
                    timeout: self.has(Col::Timeout),
                    daemon: self.has(Col::Daemon),
                    exact: self.has(Col::Exact),
                    nosort: self.has(Col::NoSort),
                }))
            }
            Cmd::Flush => Ok(Command::Clear),
            Cmd::Restore if self.restoring => Err(ParseError::try_help(self.prog)),
            Cmd::Restore => Ok(Command::Restore),
            Cmd::Save => Ok(Command::Save {
                numeric: self.has(Col::Numeric),
            }),
            Cmd::Zero => Ok(Command::Zero(self.key())),
            Cmd::Timeout => Ok(Command::SetTimeouts {
                tcp: timeouts[0],
                tcpfin: timeouts[1],
                udp: timeouts[2],
            }),
            Cmd::StartDaemon => {
                let mut daemon = self.daemon;
                if daemon.mcast_interface.is_empty() {
                    daemon.mcast_interface = DEFAULT_MCAST_INTERFACE.to_string();
                }
                Ok(Command::StartDaemon(daemon))
            }
            Cmd::StopDaemon => Ok(Command::StopDaemon(self.daemon)),
            Cmd::AddLaddr | Cmd::DelLaddr => {
                let service = self.required_key()?;
                let laddr = self
                    .laddr
                    .ok_or_else(|| ParseError::fail("illegal local address"))?;
                let ifname = self.ifname;
                Ok(if self.cmd == Cmd::AddLaddr {
                    Command::AddLaddr {
                        service,
                        laddr,
                        ifname,
                    }
                } else {
                    Command::DelLaddr {
                        service,
                        laddr,
                        ifname,
                    }
                })
            }
            Cmd::GetLaddr => Ok(Command::GetLaddr(self.key())),
        }
    }
}

fn sync_state(v: Option<&str>) -> Option<SyncState> {
    match v {
        Some("master") => Some(SyncState::Master),
        Some("backup") => Some(SyncState::Backup),
        _ => None,
    }
}

/// `string_to_number` with its `fail(2, ...)`, converted to the field's type.
fn number<T: TryFrom<i64>>(v: &str, min: i64, max: i64, err: &str) -> Result<T, ParseError> {
    string_to_number(v, min, max)
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| ParseError::fail(err))
}

/// `parse_timeout(buf, min, MAX_TIMEOUT)`.
fn parse_timeout(v: &str, min: i64) -> Result<u32, ParseError> {
    number(v, min, MAX_TIMEOUT, "")
        .map_err(|_| ParseError::fail(format!("invalid timeout value `{v}' specified")))
}

/// `parse_sched_flags`: comma-separated, checked against the scheduler
/// named anywhere on the line (wlc when none is).
fn parse_sched_flags(sched: &str, arg: &str) -> Result<SchedFlags, ParseError> {
    let sched = if sched.is_empty() {
        DEFAULT_SCHEDULER
    } else {
        sched
    };
    let mut flags = 0;
    let mut any = false;
    // strtok: empty fields between commas are skipped.
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        any = true;
        let (bit, needs) = match flag {
            "flag-1" => (SchedFlags::SCHED1, None),
            "flag-2" => (SchedFlags::SCHED2, None),
            "flag-3" => (SchedFlags::SCHED3, None),
            "sh-fallback" => (SchedFlags::SCHED1, Some("sh")),
            "sh-port" => (SchedFlags::SCHED2, Some("sh")),
            "mh-fallback" => (SchedFlags::SCHED1, Some("mh")),
            "mh-port" => (SchedFlags::SCHED2, Some("mh")),
            _ => return Err(ParseError::fail(format!("invalid scheduler flag `{flag}'"))),
        };
        if needs.is_some_and(|s| s != sched) {
            return Err(ParseError::fail(format!(
                "incompatible scheduler flag `{flag}'"
            )));
        }
        flags |= bit;
    }
    if !any {
        // Only commas: ipvsadm hands strtok's NULL to strcmp and crashes;
        // refusing the list is the nearest sane answer.
        return Err(ParseError::fail(format!("invalid scheduler flag `{arg}'")));
    }
    Ok(SchedFlags(flags))
}
