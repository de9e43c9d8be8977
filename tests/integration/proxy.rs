//! A fault-injecting HTTP/1.1 proxy in front of moto, for tests of what execrole does when AWS misbehaves: it
//! listens on a free 127.0.0.1 port, forwards each request to moto, and answers a seeded, configurable share of
//! requests with a throttle (`400 Throttling` in IAM's query-protocol XML, `400 ThrottlingException` in the JSON
//! shape of ECS and the other JSON-protocol services), a `500` or `503`, a connection reset without an answer, or a
//! lost response (the request reaches moto and takes effect, then the connection is reset before the answer). It
//! counts what it did, per outcome and per AWS operation (`Action=` of a query-protocol form, or the operation of
//! the `X-Amz-Target` header), so a fault rate of zero makes it a request counter.
//!
//! It is deliberately minimal: one request per client connection (every answer says `Connection: close`), request
//! bodies framed by `Content-Length` (all the SDK sends to these services), and a fresh connection to moto per
//! request. The decisions come from a seeded generator in the order requests arrive, so a run with one client is
//! reproducible; with concurrent clients the arrival order, not the generator, varies. It runs on its own thread
//! and runtime, so tests may block (wait for a child process) while it serves.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Forwarded to moto and the answer returned.
    Forwarded,
    /// Answered `400` with the service's throttling error, not forwarded.
    Throttled,
    /// Answered `500 InternalFailure`, not forwarded.
    InternalError,
    /// Answered `503 ServiceUnavailable`, not forwarded.
    Unavailable,
    /// The connection was reset without an answer, not forwarded.
    Reset,
    /// Forwarded (the call happened on moto), then the connection was reset before the answer.
    LostResponse,
}

impl Outcome {
    /// Every fault, in the order their shares are drawn.
    const FAULTS: [Outcome; 5] = [
        Outcome::Throttled,
        Outcome::InternalError,
        Outcome::Unavailable,
        Outcome::Reset,
        Outcome::LostResponse,
    ];

    /// Whether the request reached moto.
    fn is_forwarded(self) -> bool {
        matches!(self, Outcome::Forwarded | Outcome::LostResponse)
    }
}

/// The share of requests, in percent, that get each fault; the rest are forwarded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultRates {
    /// Throttling errors.
    pub throttle: u32,
    /// `500 InternalFailure`.
    pub internal_error: u32,
    /// `503 ServiceUnavailable`.
    pub unavailable: u32,
    /// Connection resets without an answer.
    pub reset: u32,
    /// Lost responses (the call happened).
    pub lost_response: u32,
}

impl FaultRates {
    /// No faults: the proxy only forwards and counts.
    pub const NONE: FaultRates = FaultRates {
        throttle: 0,
        internal_error: 0,
        unavailable: 0,
        reset: 0,
        lost_response: 0,
    };

    fn share(&self, outcome: Outcome) -> u32 {
        match outcome {
            Outcome::Forwarded => 0,
            Outcome::Throttled => self.throttle,
            Outcome::InternalError => self.internal_error,
            Outcome::Unavailable => self.unavailable,
            Outcome::Reset => self.reset,
            Outcome::LostResponse => self.lost_response,
        }
    }

    /// The share of requests that get some fault, in percent.
    pub fn total(&self) -> u32 {
        Outcome::FAULTS.iter().map(|&o| self.share(o)).sum()
    }
}

/// What the proxy has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests per operation and outcome.
    pub by_operation: BTreeMap<String, BTreeMap<Outcome, u64>>,
}

impl Counts {
    /// Requests with this outcome, over all operations.
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.by_operation
            .values()
            .filter_map(|o| o.get(&outcome))
            .sum()
    }

    /// Requests for this operation, whatever their outcome.
    pub fn requests(&self, operation: &str) -> u64 {
        self.by_operation
            .get(operation)
            .map_or(0, |o| o.values().sum())
    }

    /// Requests for this operation that reached moto (forwarded or with their response lost).
    pub fn reached_moto(&self, operation: &str) -> u64 {
        self.by_operation.get(operation).map_or(0, |o| {
            o.iter()
                .filter(|(k, _)| k.is_forwarded())
                .map(|(_, n)| n)
                .sum()
        })
    }

    /// Requests that got a fault.
    pub fn faults(&self) -> u64 {
        Outcome::FAULTS.iter().map(|&o| self.outcome(o)).sum()
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.by_operation.values().flat_map(|o| o.values()).sum()
    }

    /// Per outcome, for reports.
    pub fn by_outcome(&self) -> BTreeMap<Outcome, u64> {
        let mut totals = BTreeMap::new();
        for (outcome, n) in self.by_operation.values().flat_map(|o| o.iter()) {
            *totals.entry(*outcome).or_default() += n;
        }
        totals
    }
}

/// A fault for one request: the `nth` (from 1) request for `operation` gets `outcome`, whatever the rates say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targeted {
    /// The AWS operation (`CreatePolicy`).
    pub operation: String,
    /// Which of its requests, counting from 1.
    pub nth: u64,
    /// What happens to it.
    pub outcome: Outcome,
}

/// The decisions: rates, targeted faults, the seeded generator, and the counts.
struct Rules {
    rates: FaultRates,
    targeted: Vec<Targeted>,
    rng: SplitMix64,
    counts: Counts,
}

impl Rules {
    /// Decide what happens to the next request for `operation`, and count it.
    fn decide(&mut self, operation: &str) -> Outcome {
        let nth = self.counts.requests(operation) + 1;
        let roll = (self.rng.next() % 100) as u32;
        let outcome = self
            .targeted
            .iter()
            .find(|t| t.operation == operation && t.nth == nth)
            .map(|t| t.outcome)
            .unwrap_or_else(|| self.drawn(roll));
        *self
            .counts
            .by_operation
            .entry(operation.to_string())
            .or_default()
            .entry(outcome)
            .or_default() += 1;
        outcome
    }

    fn drawn(&self, roll: u32) -> Outcome {
        let mut upto = 0;
        for outcome in Outcome::FAULTS {
            upto += self.rates.share(outcome);
            if roll < upto {
                return outcome;
            }
        }
        Outcome::Forwarded
    }
}

/// SplitMix64: a tiny seeded generator, so a seed names one sequence of decisions.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `range` (start inclusive, end exclusive; the range must not be empty).
    pub fn between(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next() % (range.end - range.start)
    }
}

/// A running proxy, stopped when dropped.
pub struct Proxy {
    /// The URL clients use (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    rules: Arc<Mutex<Rules>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Start a proxy in front of `upstream` (an `http://127.0.0.1:PORT` URL) with these fault rates, seeded.
    pub fn start(upstream: &str, rates: FaultRates, seed: u64) -> Proxy {
        Proxy::start_with(upstream, rates, Vec::new(), seed)
    }

    /// Start a proxy with fault rates and targeted faults.
    pub fn start_with(
        upstream: &str,
        rates: FaultRates,
        targeted: Vec<Targeted>,
        seed: u64,
    ) -> Proxy {
        assert!(rates.total() <= 100, "fault shares over 100 %: {rates:?}");
        let upstream: SocketAddr = upstream
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .filter(|a: &SocketAddr| a.ip().is_loopback())
            .unwrap_or_else(|| panic!("upstream must be http://127.0.0.1:PORT, not {upstream}"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
        let rules = Arc::new(Mutex::new(Rules {
            rates,
            targeted,
            rng: SplitMix64::new(seed),
            counts: Counts::default(),
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let shared = rules.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the proxy's runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("a tokio listener");
                tokio::select! {
                    () = accept(listener, upstream, shared) => {}
                    _ = stopped => {}
                }
            });
        });
        Proxy {
            endpoint,
            rules,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// What the proxy has done so far.
    pub fn counts(&self) -> Counts {
        self.rules.lock().expect("proxy rules").counts.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, rules: Arc<Mutex<Rules>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let rules = rules.clone();
        tokio::spawn(async move {
            // A client that hangs up early is the client's business: nothing to report.
            let _ = serve(client, upstream, rules).await;
        });
    }
}

/// One request read from a client: its head lines and body.
struct Request {
    start_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the service speaks a JSON protocol (an `X-Amz-Target` header) rather than the query protocol.
    fn is_json(&self) -> bool {
        self.header("x-amz-target").is_some()
    }

    /// The AWS operation: the `X-Amz-Target` header's operation, else the form's `Action`, else method and path.
    fn operation(&self) -> String {
        if let Some(target) = self.header("x-amz-target") {
            return target.rsplit('.').next().unwrap_or(target).to_string();
        }
        let form = String::from_utf8_lossy(&self.body);
        form.split('&')
            .find_map(|field| field.strip_prefix("Action="))
            .map(str::to_string)
            .unwrap_or_else(|| {
                let mut parts = self.start_line.split(' ');
                let method = parts.next().unwrap_or("");
                let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
                format!("{method} {path}")
            })
    }

    /// The request as sent upstream, asking moto to close the connection after its answer.
    fn to_upstream(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start_line);
        for (name, value) in &self.headers {
            if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive")
            {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// How long one exchange with a client or with moto may take before the proxy gives up on it.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(120);

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    rules: Arc<Mutex<Rules>>,
) -> io::Result<()> {
    let Some(request) = within(read_request(&mut client)).await? else {
        return Ok(());
    };
    let outcome = rules
        .lock()
        .expect("proxy rules")
        .decide(&request.operation());
    match outcome {
        Outcome::Forwarded => {
            let answer = within(forward(upstream, &request)).await?;
            client.write_all(&answer).await?;
            client.shutdown().await
        }
        Outcome::Throttled | Outcome::InternalError | Outcome::Unavailable => {
            client
                .write_all(&error_response(outcome, request.is_json()))
                .await?;
            client.shutdown().await
        }
        Outcome::Reset => reset(client),
        Outcome::LostResponse => {
            within(forward(upstream, &request)).await?;
            reset(client)
        }
    }
}

async fn within<T>(work: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(EXCHANGE_LIMIT, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "proxy exchange timed out"))?
}

/// Close with a TCP reset (SO_LINGER 0), so the client sees its connection reset, not an orderly end.
fn reset(client: TcpStream) -> io::Result<()> {
    client.set_zero_linger()?;
    drop(client);
    Ok(())
}

/// Read one request (head, then a `Content-Length` body); `None` when the client closed without sending one.
async fn read_request(client: &mut TcpStream) -> io::Result<Option<Request>> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > 1 << 20 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let start_line = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut request = Request {
        start_line,
        headers,
        body: buffer[head_end + 4..].to_vec(),
    };
    if request.header("transfer-encoding").is_some() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "chunked request bodies are not supported by the test proxy",
        ));
    }
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while request.body.len() < length {
        let mut chunk = vec![0u8; length - request.body.len()];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        request.body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(request))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Send the request to moto on a fresh connection and read its whole answer (moto closes after it), returned with
/// `Connection: close` so the client does not reuse its connection to the proxy.
async fn forward(upstream: SocketAddr, request: &Request) -> io::Result<Vec<u8>> {
    let mut moto = TcpStream::connect(upstream).await?;
    moto.write_all(&request.to_upstream()).await?;
    let mut answer = Vec::new();
    moto.read_to_end(&mut answer).await?;
    let head_end = find(&answer, b"\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "moto sent no HTTP head"))?;
    let head = String::from_utf8_lossy(&answer[..head_end]).into_owned();
    let mut out = String::new();
    for line in head.split("\r\n") {
        let name = line.split(':').next().unwrap_or("");
        if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&answer[head_end + 4..]);
    Ok(bytes)
}

/// The error answer for a fault, in the shape of the service's protocol (what the SDK parses to classify it).
fn error_response(outcome: Outcome, is_json: bool) -> Vec<u8> {
    let (status, code, message) = match outcome {
        Outcome::Throttled if is_json => {
            ("400 Bad Request", "ThrottlingException", "Rate exceeded")
        }
        Outcome::Throttled => ("400 Bad Request", "Throttling", "Rate exceeded"),
        Outcome::InternalError => ("500 Internal Server Error", "InternalFailure", "injected"),
        _ => ("503 Service Unavailable", "ServiceUnavailable", "injected"),
    };
    let (content_type, body) = if is_json {
        (
            "application/x-amz-json-1.1",
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
        )
    } else {
        let kind = if status.starts_with('4') {
            "Sender"
        } else {
            "Receiver"
        };
        (
            "text/xml",
            format!(
                r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"#
            ),
        )
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
