//! An SMTP catcher for the email tests: a small SMTP server on tokio, on loopback, that keeps
//! every message it accepts. It speaks what a client needs (RFC 5321): the greeting, EHLO/HELO,
//! MAIL FROM, RCPT TO, DATA (with dot-unstuffing), RSET, NOOP and QUIT. It can refuse every
//! message after DATA for good (5xx) or for now (4xx), and be stopped (connections refused) and started again on the
//! same port.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// What the catcher does with a message at the end of DATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpMode {
    Accept,
    /// `554 5.7.1` for every message: a permanent refusal.
    Refuse,
    /// `451 4.3.0` for every message: "try again later".
    Defer,
    /// `535 5.7.8` for every message: the relay does not take our credentials (permanent by
    /// its first digit, but about the session, not the message).
    Unauthorised,
}

/// One message as it arrived.
#[derive(Clone, Debug)]
pub struct Caught {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message (headers and body) after dot-unstuffing, CRLF line ends.
    pub data: String,
}

impl Caught {
    /// The headers, unfolded, names lower-cased.
    pub fn headers(&self) -> Vec<(String, String)> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut out: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = out.last_mut() {
                    last.1.push_str(line);
                }
            } else if let Some((k, v)) = line.split_once(':') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        out
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(k, _)| k == &name.to_ascii_lowercase())
            .map(|(_, v)| v)
    }

    pub fn subject(&self) -> String {
        self.header("subject").unwrap_or_default()
    }

    /// The body, decoded from quoted-printable when the message says so, `\n` line ends.
    pub fn body(&self) -> String {
        let raw = self
            .data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let qp = self
            .header("content-transfer-encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"));
        let text = if qp {
            quoted_printable(raw)
        } else {
            raw.to_owned()
        };
        text.replace("\r\n", "\n")
    }
}

fn quoted_printable(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Default)]
struct Inbox {
    messages: Vec<Caught>,
    /// Messages refused at the end of DATA.
    refused: usize,
    /// Connections accepted.
    connections: usize,
}

struct Shared {
    mode: Mutex<SmtpMode>,
    inbox: Mutex<Inbox>,
}

/// The catcher; see the module docs.
pub struct SmtpCatcher {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SmtpCatcher {
    /// A catcher on a free loopback port.
    pub async fn start(mode: SmtpMode) -> SmtpCatcher {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            inbox: Mutex::new(Inbox::default()),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        SmtpCatcher {
            addr,
            shared,
            task: Mutex::new(Some(task)),
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Close the port (and every open connection): clients are refused until [`Self::restart`].
    pub async fn stop(&self) {
        let task = self.task.lock().unwrap().take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }

    /// Listen again on the same port.
    pub async fn restart(&self) {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await.unwrap();
        *self.task.lock().unwrap() = Some(tokio::spawn(serve(listener, self.shared.clone())));
    }

    pub fn set_mode(&self, mode: SmtpMode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub fn messages(&self) -> Vec<Caught> {
        self.shared.inbox.lock().unwrap().messages.clone()
    }

    /// The accepted messages to `address`.
    pub fn to(&self, address: &str) -> Vec<Caught> {
        self.messages()
            .into_iter()
            .filter(|m| m.rcpt_to.iter().any(|r| r == address))
            .collect()
    }

    pub fn refused(&self) -> usize {
        self.shared.inbox.lock().unwrap().refused
    }

    pub fn connections(&self) -> usize {
        self.shared.inbox.lock().unwrap().connections
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                shared.inbox.lock().unwrap().connections += 1;
                let shared = shared.clone();
                sessions.spawn(async move {
                    let _ = session(stream, shared).await;
                });
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// The address inside `FROM:<a@b> PARAMS` or `TO:<a@b>`.
fn path(arg: &str) -> String {
    let rest = arg.split_once(':').map(|(_, r)| r).unwrap_or(arg).trim();
    let rest = rest.split_whitespace().next().unwrap_or_default();
    rest.trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 catcher.test ESMTP ready\r\n").await?;
    let mut from: Option<String> = None;
    let mut rcpt: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end_matches(['\r', '\n']);
        let (verb, arg) = cmd.split_once(' ').unwrap_or((cmd, ""));
        let reply: &[u8] = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                from = None;
                rcpt.clear();
                b"250-catcher.test greets you\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n"
            }
            "HELO" => {
                from = None;
                rcpt.clear();
                b"250 catcher.test\r\n"
            }
            "MAIL" => {
                from = Some(path(arg));
                rcpt.clear();
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" if from.is_some() => {
                rcpt.push(path(arg));
                b"250 2.1.5 OK\r\n"
            }
            "RCPT" => b"503 5.5.1 MAIL first\r\n",
            "DATA" if from.is_none() || rcpt.is_empty() => b"503 5.5.1 MAIL and RCPT first\r\n",
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if read.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    // Dot-unstuffing: a line the client began with a dot had one added.
                    let l = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(l);
                }
                let mode = *shared.mode.lock().unwrap();
                let caught = Caught {
                    mail_from: from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpt),
                    data,
                };
                match mode {
                    SmtpMode::Accept => {
                        shared.inbox.lock().unwrap().messages.push(caught);
                        b"250 2.0.0 OK queued\r\n"
                    }
                    SmtpMode::Refuse => {
                        shared.inbox.lock().unwrap().refused += 1;
                        b"554 5.7.1 Message refused by the catcher\r\n"
                    }
                    SmtpMode::Defer => {
                        shared.inbox.lock().unwrap().refused += 1;
                        b"451 4.3.0 Try again later\r\n"
                    }
                    SmtpMode::Unauthorised => {
                        shared.inbox.lock().unwrap().refused += 1;
                        b"535 5.7.8 Authentication credentials invalid\r\n"
                    }
                }
            }
            "RSET" => {
                from = None;
                rcpt.clear();
                b"250 2.0.0 OK\r\n"
            }
            "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}
