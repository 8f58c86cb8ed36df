//! A coordinated-omission-aware HTTP/1.1 load generator on hyper, with keep-alive connections.
//!
//! **Open loop** ([`open_loop`]): request `i` is due at `start + i / rate`, whatever happened to
//! the requests before it. A dispatcher thread releases each request into a queue that every
//! connection takes from, sleeping with the OS's sub-millisecond timer (not tokio's millisecond
//! wheel) and spinning the last stretch, so that its own late wake-up is not charged to the
//! server. It releases a request a short lead (up to 150 us, a quarter of the interval) before
//! its due time, and the connection that takes it spins until the due time before sending: the
//! hand-off from the dispatcher to a connection (waking a parked worker thread, tens of
//! microseconds on a VM) happens in that lead, not in the measured time, as in wrk2, whose
//! threads pace their own connections with no hand-off at all. Latency is measured from the
//! *due* time to the last byte of the response. A server that stalls for 100 ms therefore
//! charges the stall to every request that should have been sent during it, as wrk2 and oha's
//! latency correction do, instead of to the one request that was waiting (coordinated
//! omission). When every connection is busy, released requests wait in the queue and that wait
//! counts too.
//!
//! **Closed loop** ([`closed_loop`]): every connection sends its next request as soon as the
//! previous answer is read; the completions per second are the maximum throughput.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long before a release time the dispatcher stops sleeping and spins, at most: never more
/// than a tenth of the interval between requests, so the spinning costs at most a tenth of a core.
const SPIN: Duration = Duration::from_micros(100);

/// How long before its due time a request is handed to a connection, at most: never more than a
/// quarter of the interval. The connection spins out what is left of it, so at 1,000 a second
/// the connections spin about a tenth of a core between them.
const LEAD: Duration = Duration::from_micros(150);

/// Where requests go and what they carry.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    /// The `Authorization` header value, if any.
    pub authorization: Option<HeaderValue>,
    /// Request bodies; each request takes one, spread evenly at random.
    pub bodies: Arc<Vec<Bytes>>,
    /// Whether a 200 response body is a correct answer (a GraphQL body without `errors`, say).
    pub valid: fn(&[u8]) -> bool,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Latency of every completed request, nanoseconds, sorted.
    pub latencies_ns: Vec<u64>,
    /// Requests that failed: transport error, status other than 200, or an invalid body.
    pub errors: u64,
    /// Completed requests (errors included) per second of the run.
    pub throughput: f64,
    /// The rate asked for (open loop), or `None` (closed loop).
    pub target_rate: Option<f64>,
    /// The machine's 1-minute load average when the run ended: how busy the shared machine was.
    pub load_average: String,
}

impl Outcome {
    /// The `q`-quantile of latency (0.5, 0.99, 0.999), nearest rank.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies_ns.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * self.latencies_ns.len() as f64).ceil() as usize).max(1);
        Duration::from_nanos(self.latencies_ns[rank.min(self.latencies_ns.len()) - 1])
    }

    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.latencies_ns.last().copied().unwrap_or(0))
    }
}

/// One keep-alive connection; reconnects after an error.
struct Conn {
    target: Target,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    fn new(target: Target) -> Self {
        let host = HeaderValue::from_str(&target.addr.to_string()).expect("an address is ASCII");
        Conn {
            target,
            host,
            sender: None,
        }
    }

    async fn connect(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.target.addr).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("connected above"))
    }

    /// Sends one request and reads the whole answer; true when it was a valid answer.
    async fn call(&mut self, body: Bytes) -> bool {
        match self.try_call(body).await {
            Ok(ok) => ok,
            Err(_) => {
                self.sender = None;
                false
            }
        }
    }

    async fn try_call(&mut self, body: Bytes) -> anyhow::Result<bool> {
        let mut request = Request::post(self.target.path.as_str())
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(body))?;
        if let Some(auth) = &self.target.authorization {
            request.headers_mut().insert(AUTHORIZATION, auth.clone());
        }
        let valid = self.target.valid;
        let sender = self.connect().await?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(status == hyper::StatusCode::OK && valid(&body))
    }
}

/// A cheap, well-mixed pick of a body for request `i` (splitmix64).
fn pick(i: u64, seed: u64, n: usize) -> usize {
    let mut z = i.wrapping_add(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % n as u64) as usize
}

/// Sends `rate` requests a second for `duration` over `connections` keep-alive connections,
/// each due at its fixed time, and measures every latency from its due time.
pub async fn open_loop(
    target: &Target,
    rate: f64,
    duration: Duration,
    connections: usize,
    seed: u64,
) -> Outcome {
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let spin = SPIN.min(interval / 10);
    let lead = LEAD.min(interval / 4);
    let (tx, rx) = flume::unbounded::<(u64, Instant)>();
    // Connect first, so that connection set-up is not charged to the first requests.
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut c = Conn::new(target.clone());
        let _ = c.connect().await;
        conns.push(c);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let dispatcher = std::thread::spawn(move || {
        let mut i = 0u64;
        while i < total {
            let now = Instant::now();
            // Release everything due within the lead, each with its own due time.
            while i < total {
                let due = start + interval.mul_f64(i as f64);
                if due > now + lead {
                    break;
                }
                if tx.send((i, due)).is_err() {
                    return;
                }
                i += 1;
            }
            if i < total {
                let next = start + interval.mul_f64(i as f64) - lead;
                // The OS timer wakes a sleeper tens of microseconds late (more on a busy VM);
                // the last stretch is spun so that each request leaves at its due time.
                let wait = next.saturating_duration_since(Instant::now());
                if wait > spin {
                    std::thread::sleep(wait - spin);
                }
                while Instant::now() < next {
                    std::hint::spin_loop();
                }
            }
        }
    });
    let n_bodies = target.bodies.len();
    let workers: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut last = start;
                while let Ok((i, due)) = rx.recv_async().await {
                    let body = conn.target.bodies[pick(i, seed, n_bodies)].clone();
                    // Handed over up to `lead` early: send at the due time, not before.
                    while Instant::now() < due {
                        std::hint::spin_loop();
                    }
                    let ok = conn.call(body).await;
                    let done = Instant::now();
                    latencies.push(done.saturating_duration_since(due).as_nanos() as u64);
                    if !ok {
                        errors += 1;
                    }
                    last = last.max(done);
                }
                (latencies, errors, last)
            })
        })
        .collect();
    drop(rx);
    let _ = tokio::task::spawn_blocking(move || dispatcher.join()).await;
    let mut outcome = gather(workers, start).await;
    outcome.target_rate = Some(rate);
    outcome
}

/// Sends requests back to back over `connections` keep-alive connections for `duration`;
/// latency is measured from each send.
pub async fn closed_loop(
    target: &Target,
    duration: Duration,
    connections: usize,
    seed: u64,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut c = Conn::new(target.clone());
        let _ = c.connect().await;
        conns.push(c);
    }
    let start = Instant::now();
    let n_bodies = target.bodies.len();
    let workers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(w, mut conn)| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut last = start;
                let mut i = (w as u64) << 40;
                while !stop.load(Ordering::Relaxed) {
                    let body = conn.target.bodies[pick(i, seed, n_bodies)].clone();
                    i += 1;
                    let sent = Instant::now();
                    let ok = conn.call(body).await;
                    let done = Instant::now();
                    latencies.push(done.saturating_duration_since(sent).as_nanos() as u64);
                    if !ok {
                        errors += 1;
                    }
                    last = done;
                }
                (latencies, errors, last)
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    gather(workers, start).await
}

/// Sends every body of `target` once, spread over `connections` connections; returns the
/// number of invalid answers. Used to warm caches.
pub async fn each_once(target: &Target, connections: usize) -> u64 {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let next = next.clone();
            let mut conn = Conn::new(target.clone());
            tokio::spawn(async move {
                let mut errors = 0u64;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = conn.target.bodies.get(i).cloned() else {
                        break;
                    };
                    if !conn.call(body).await {
                        errors += 1;
                    }
                }
                errors
            })
        })
        .collect();
    let mut errors = 0;
    for w in workers {
        errors += w.await.unwrap_or(1);
    }
    errors
}

/// One request on a fresh connection: `POST` with a body, `GET` without; the status and body.
pub async fn request(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&HeaderValue>,
    body: Option<Bytes>,
) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut builder = Request::builder()
        .uri(path)
        .header(HOST, HeaderValue::from_str(&addr.to_string())?);
    if let Some(auth) = authorization {
        builder = builder.header(AUTHORIZATION, auth.clone());
    }
    let request = match body {
        Some(body) => builder
            .method(hyper::Method::POST)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(body))?,
        None => builder
            .method(hyper::Method::GET)
            .body(Full::new(Bytes::new()))?,
    };
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

type WorkerResult = (Vec<u64>, u64, Instant);

async fn gather(workers: Vec<tokio::task::JoinHandle<WorkerResult>>, start: Instant) -> Outcome {
    let mut latencies_ns = Vec::new();
    let mut errors = 0;
    let mut last = start;
    for w in workers {
        if let Ok((l, e, t)) = w.await {
            latencies_ns.extend(l);
            errors += e;
            last = last.max(t);
        }
    }
    latencies_ns.sort_unstable();
    let elapsed = last.saturating_duration_since(start).as_secs_f64();
    let throughput = if elapsed > 0.0 {
        latencies_ns.len() as f64 / elapsed
    } else {
        0.0
    };
    Outcome {
        latencies_ns,
        errors,
        throughput,
        target_rate: None,
        load_average: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_string))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let o = Outcome {
            latencies_ns: (1..=1000).collect(),
            errors: 0,
            throughput: 0.0,
            target_rate: None,
            load_average: String::new(),
        };
        assert_eq!(o.quantile(0.5), Duration::from_nanos(500));
        assert_eq!(o.quantile(0.99), Duration::from_nanos(990));
        assert_eq!(o.quantile(0.999), Duration::from_nanos(999));
        assert_eq!(o.max(), Duration::from_nanos(1000));
    }

    #[test]
    fn picks_spread_over_every_body() {
        let mut seen = vec![0u32; 10];
        for i in 0..10_000 {
            seen[pick(i, 7, 10)] += 1;
        }
        assert!(seen.iter().all(|n| (800..1200).contains(n)), "{seen:?}");
    }
}
