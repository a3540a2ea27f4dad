//! A loop of short requests on a thread, the failover tests' yardstick:
//! when each request started and ended and which page answered it, so a
//! test can say which failures fall inside the window it expects.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::{body_or_why, curl_in};

#[derive(Clone, Debug)]
pub struct Request {
    pub start: Instant,
    /// The page that answered (a real server's name); None: it failed.
    pub page: Option<String>,
    /// Why it failed: curl's exit status and message, so that a failure
    /// a test did not expect says what the client saw.
    pub why: Option<String>,
    pub end: Instant,
}

pub struct RequestLoop {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Request>>>,
    thread: Option<JoinHandle<()>>,
}

impl RequestLoop {
    /// curl with `args` (see [`curl_in`]) in the namespace named `ns`, at
    /// most `max_time` seconds each, `pause` between one and the next.
    pub fn start(ns: String, max_time: &str, args: &[&str], pause: Duration) -> RequestLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (s, l) = (stop.clone(), log.clone());
        let max_time = max_time.to_string();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let thread = std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            while !s.load(Ordering::Relaxed) {
                let start = Instant::now();
                let got = match curl_in(&ns, &max_time, &args).output() {
                    Ok(o) => body_or_why(&o),
                    Err(e) => Err(format!("curl did not run: {e}")),
                };
                let (page, why) = match got {
                    Ok(page) => (Some(page), None),
                    Err(why) => (None, Some(why)),
                };
                let end = Instant::now();
                let r = Request {
                    start,
                    page,
                    why,
                    end,
                };
                l.lock().unwrap().push(r);
                std::thread::sleep(pause);
            }
        });
        RequestLoop {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// The requests that started at `t` or later, so far.
    pub fn since(&self, t: Instant) -> Vec<Request> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|r| r.start >= t).cloned().collect()
    }

    /// Stops the loop once the request under way ends; all requests.
    pub fn finish(mut self) -> Vec<Request> {
        self.halt();
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RequestLoop {
    fn drop(&mut self) {
        self.halt();
    }
}
