//! Shared parts of the client's integration tests: the simulator on 127.0.0.1 port 0, firms of
//! exact sizes, clients for them, and a small HTTP/1.1 server that can stand in front of the
//! simulator (to drop or replace answers) or stand alone (to serve shapes the simulator does not).
#![allow(dead_code)]

use imanage::{Client, ClientConfig, RetryPolicy};
use imanage_sim::firm::{Firm, SimDatabase, SimGroup, SimUser, Truth};
use imanage_sim::{ClientSpec, RunningSim, Sim, SimConfig};
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const ADMIN_ID: &str = "idgraph";
pub const ADMIN_SECRET: &str = "idgraph-secret-7f3a";
pub const READER_ID: &str = "reader";
pub const READER_SECRET: &str = "reader-secret-91c2";

/// The two registered clients: one with `admin user`, one with `user` only.
pub fn clients() -> Vec<ClientSpec> {
    vec![
        ClientSpec {
            id: ADMIN_ID.into(),
            secret: ADMIN_SECRET.into(),
            scopes: vec!["admin".into(), "user".into()],
        },
        ClientSpec {
            id: READER_ID.into(),
            secret: READER_SECRET.into(),
            scopes: vec!["user".into()],
        },
    ]
}

pub fn sim_config(token_ttl_s: u64) -> SimConfig {
    SimConfig {
        clients: clients(),
        token_ttl_s,
        ..SimConfig::default()
    }
}

/// A simulator of a generated firm.
pub async fn start_sim(config: SimConfig) -> RunningSim {
    Sim::new(config)
        .spawn("127.0.0.1:0")
        .await
        .expect("simulator binds 127.0.0.1:0")
}

/// A simulator of a hand-built firm.
pub async fn start_firm(config: SimConfig, firm: Firm) -> RunningSim {
    Sim::from_firm(config, firm)
        .spawn("127.0.0.1:0")
        .await
        .expect("simulator binds 127.0.0.1:0")
}

/// A user of a hand-built firm; ids sort in creation order.
pub fn user(db: &str, i: usize) -> SimUser {
    SimUser {
        id: format!("usr_{i:06}"),
        login_name: format!("{db}-user{i}"),
        email: Some(format!("{db}-user{i}@acme.com")),
        first_name: format!("First{i}"),
        last_name: format!("Last{i}"),
        display_name: Some(format!("First{i} Last{i}")),
        active: i % 17 != 3,
        user_type: if i % 11 == 5 { "external" } else { "full" }.into(),
        default_database: Some(db.into()),
        phone: None,
        department: Some("Litigation".into()),
        title: None,
        created_date: "2016-03-14T09:21:07Z".into(),
    }
}

/// One database per entry of `users`, named `db0`, `db1`, ..., with that many users, and one
/// group `grp_all` holding the first `members` users of each (capped at the user count) plus an
/// empty group `grp_none`.
pub fn exact_firm(users: &[usize], members: usize) -> Firm {
    let databases = users
        .iter()
        .enumerate()
        .map(|(d, &n)| {
            let name = format!("db{d}");
            let users: BTreeMap<String, SimUser> = (0..n)
                .map(|i| {
                    let u = user(&name, i);
                    (u.id.clone(), u)
                })
                .collect();
            let all: BTreeSet<String> = users.keys().take(members).cloned().collect();
            let groups = [
                SimGroup {
                    id: "grp_all".into(),
                    name: "Everyone".into(),
                    members: all,
                },
                SimGroup {
                    id: "grp_none".into(),
                    name: "Nobody".into(),
                    members: BTreeSet::new(),
                },
            ]
            .into_iter()
            .map(|g| (g.id.clone(), g))
            .collect();
            SimDatabase {
                customer_id: name,
                users,
                groups,
                workspaces: BTreeMap::new(),
            }
        })
        .collect();
    Firm {
        databases,
        truth: Truth::default(),
    }
}

/// Fast retries, so fault tests finish in seconds.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 10,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(1500),
        budget: Duration::from_secs(60),
    }
}

pub fn config_for(base: &str, id: &str, secret: &str) -> ClientConfig {
    ClientConfig {
        base_url: url::Url::parse(base).expect("base url"),
        client_id: id.into(),
        client_secret: SecretString::from(secret),
        retry: quick_retry(),
        ..ClientConfig::default()
    }
}

/// The admin client for a simulator, with `page_size`.
pub fn admin(sim: &RunningSim, page_size: u32) -> Client {
    Client::new(ClientConfig {
        page_size,
        ..config_for(&sim.base_url(), ADMIN_ID, ADMIN_SECRET)
    })
    .expect("valid config")
}

/// The `user`-scope client for a simulator.
pub fn reader(sim: &RunningSim) -> Client {
    Client::new(config_for(&sim.base_url(), READER_ID, READER_SECRET)).expect("valid config")
}

/// Every item of a page stream, failing the test on an error.
pub async fn drain<T, S>(stream: S) -> (Vec<T>, Vec<imanage::Page<()>>)
where
    S: futures::Stream<Item = imanage::Result<imanage::Page<T>>>,
{
    use futures::StreamExt;
    let mut stream = std::pin::pin!(stream);
    let mut items = Vec::new();
    let mut pages = Vec::new();
    while let Some(page) = stream.next().await {
        let page = page.expect("page");
        pages.push(imanage::Page {
            start_index: page.start_index,
            items: vec![(); page.items.len()],
            total_results: page.total_results,
            attempts: page.attempts,
        });
        items.extend(page.items);
    }
    (items, pages)
}

/// API calls the simulator served of one kind (`users_list`, `user_create`, ...).
pub fn sim_calls(sim: &RunningSim, kind: &str) -> u64 {
    sim.handle.stats().calls.get(kind).copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// A small HTTP/1.1 server for tests.

/// A request as the test server read it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    /// The first value of a header (`name` in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn query(&self, key: &str) -> Option<String> {
        let q = self.target.split_once('?')?.1;
        q.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == key).then(|| v.to_string())
        })
    }
}

/// An answer the test server makes up.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(&body).expect("json"),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} Test\r\ncontent-length: {}\r\n",
            self.status,
            self.body.len()
        );
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// What the test server does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Pass it to the upstream and its answer back.
    Forward,
    /// Pass it to the upstream, then close the connection without answering: the request was
    /// processed, but the client cannot know.
    DropAfterForward,
    /// Close the connection without passing the request on or answering.
    DropBeforeForward,
    /// Pass it to the upstream, then answer this instead of the upstream's answer.
    ReplaceAfterForward(Resp),
    /// Answer this without involving the upstream.
    Respond(Resp),
    /// Never answer (the connection stays open until the client gives up).
    Stall,
}

type Handler = dyn Fn(&Req) -> Action + Send + Sync;

/// A running test server; it stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    pub log: Arc<Mutex<Vec<Req>>>,
}

impl TestServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests seen so far (method and target).
    pub fn seen(&self) -> Vec<(String, String)> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .map(|r| (r.method.clone(), r.target.clone()))
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a test server on 127.0.0.1 port 0. With an upstream, [`Action::Forward`] and friends
/// pass requests on to it.
pub async fn serve(
    upstream: Option<SocketAddr>,
    handler: impl Fn(&Req) -> Action + Send + Sync + 'static,
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handler: Arc<Handler> = Arc::new(handler);
    let log = Arc::new(Mutex::new(Vec::new()));
    let task_log = log.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let log = task_log.clone();
            tokio::spawn(async move {
                let _ = connection(conn, upstream, handler, log).await;
            });
        }
    });
    TestServer { addr, task, log }
}

/// Reads one HTTP/1.1 message (head and a content-length body) from `conn`; `None` at EOF.
async fn read_message(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Vec<u8>>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let lower = head.to_ascii_lowercase();
    assert!(
        !lower.contains("transfer-encoding: chunked"),
        "the test server does not speak chunked encoding"
    );
    let length: usize = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().expect("content-length"))
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 65536];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let message: Vec<u8> = buf.drain(..head_end + length).collect();
    Ok(Some(message))
}

fn parse_request(message: &[u8]) -> Req {
    let head_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&message[..head_end]);
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Req {
        method: first.next().unwrap_or("").to_string(),
        target: first.next().unwrap_or("").to_string(),
        headers,
        body: message[head_end..].to_vec(),
    }
}

/// Sends `request` to the upstream on a fresh connection and reads its answer.
async fn forward(upstream: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(request).await?;
    let mut buf = Vec::new();
    read_message(&mut up, &mut buf)
        .await?
        .ok_or_else(|| std::io::Error::other("upstream closed"))
}

async fn connection(
    mut conn: TcpStream,
    upstream: Option<SocketAddr>,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<Req>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    while let Some(message) = read_message(&mut conn, &mut buf).await? {
        let req = parse_request(&message);
        log.lock().expect("log").push(req.clone());
        let action = handler(&req);
        let up = || upstream.ok_or_else(|| std::io::Error::other("no upstream"));
        match action {
            Action::Forward => {
                let answer = forward(up()?, &message).await?;
                conn.write_all(&answer).await?;
            }
            Action::DropAfterForward => {
                forward(up()?, &message).await?;
                return Ok(());
            }
            Action::DropBeforeForward => return Ok(()),
            Action::ReplaceAfterForward(resp) => {
                forward(up()?, &message).await?;
                conn.write_all(&resp.bytes()).await?;
            }
            Action::Respond(resp) => conn.write_all(&resp.bytes()).await?,
            Action::Stall => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A handler that applies `action` to the first `times` requests matching `method` and a path
/// ending in `suffix`, and forwards everything else.
pub fn on_nth(
    method: &'static str,
    suffix: &'static str,
    times: usize,
    action: Action,
) -> impl Fn(&Req) -> Action + Send + Sync + 'static {
    let left = Mutex::new(times);
    move |req: &Req| {
        let mut left = left.lock().expect("counter");
        if *left > 0 && req.method == method && req.path().ends_with(suffix) {
            *left -= 1;
            action.clone()
        } else {
            Action::Forward
        }
    }
}

/// The token answer of a fake server.
pub fn token_response() -> Resp {
    Resp::json(
        200,
        serde_json::json!({"access_token": "fake-token", "token_type": "Bearer", "expires_in": 3600}),
    )
}
