//! The core agent commands as methods of [`GuestAgent`]: each a short
//! composition of [`GuestAgent::execute`] with the types of
//! [`commands`](super::commands), plus the loops users write anyway:
//! `guest-exec` polled until the program ends, whole files read and
//! written, base64 decoded.

use super::commands::{
    GuestAgentInfo, GuestExec, GuestExecResult, GuestExecStatus, GuestExecStatusResult,
    GuestFileClose, GuestFileOpen, GuestFileRead, GuestFileWrite, GuestFsfreezeFreeze,
    GuestFsfreezeState, GuestFsfreezeStatus, GuestFsfreezeThaw, GuestGetHostName, GuestGetOsinfo,
    GuestGetTime, GuestInfo, GuestNetworkGetInterfaces, GuestNetworkInterface, GuestOSInfo,
    GuestPing, GuestShutdown,
};
use super::{GuestAgent, NoReply};
use crate::runtime::Runtime;
use crate::Error;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use qmp_proto::typed::Command as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A program to run in the guest with [`GuestAgent::exec`]: the
/// `guest-exec` arguments (its output is captured unless they say
/// otherwise).
pub type ExecRequest = GuestExec;

/// How a program run with [`GuestAgent::exec`] ended, and what it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// Its exit code, if it exited normally.
    pub exit_code: Option<i64>,
    /// The signal that ended it, if one did.
    pub signal: Option<i64>,
    /// Its standard output (decoded from base64).
    pub stdout: Vec<u8>,
    /// Its standard error (decoded from base64).
    pub stderr: Vec<u8>,
    /// Whether the agent cut either output at its size limit.
    pub truncated: bool,
}

impl ExecOutput {
    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// How many bytes one `guest-file-read` or `guest-file-write` moves.
const FILE_CHUNK: usize = 1 << 20;

/// The first and the longest pause between two `guest-exec-status` polls.
const FIRST_POLL: Duration = Duration::from_millis(5);
const LONGEST_POLL: Duration = Duration::from_millis(200);

/// The core commands, typed.
impl<R: Runtime> GuestAgent<R> {
    /// `guest-ping`: whether the agent answers (see also
    /// [`wait_until_ready`](Self::wait_until_ready)).
    pub async fn ping(&self) -> Result<(), Error> {
        self.execute(&GuestPing).await.map(drop)
    }

    /// `guest-info`: the agent's version and the commands it knows, with
    /// whether each is enabled.
    pub async fn info(&self) -> Result<GuestAgentInfo, Error> {
        self.execute(&GuestInfo).await
    }

    /// `guest-get-osinfo`: the guest's operating system.
    pub async fn osinfo(&self) -> Result<GuestOSInfo, Error> {
        self.execute(&GuestGetOsinfo).await
    }

    /// `guest-get-time`: the guest's clock, in nanoseconds since the Unix
    /// epoch.
    pub async fn time(&self) -> Result<i64, Error> {
        self.execute(&GuestGetTime).await
    }

    /// `guest-get-host-name`: the guest's host name.
    pub async fn host_name(&self) -> Result<String, Error> {
        Ok(self.execute(&GuestGetHostName).await?.host_name)
    }

    /// `guest-network-get-interfaces`: the guest's network interfaces and
    /// their addresses.
    pub async fn network_interfaces(&self) -> Result<Vec<GuestNetworkInterface>, Error> {
        self.execute(&GuestNetworkGetInterfaces).await
    }

    /// Runs a program in the guest and waits for it to end, for at most
    /// `within`: `guest-exec`, then `guest-exec-status` polled (every
    /// 5 ms at first, at most every 200 ms) until it has exited, with its
    /// output decoded from base64. Output is captured unless `request`
    /// sets [`capture_output`](GuestExec::capture_output) itself.
    ///
    /// On [`Error::Timeout`] the program goes on running in the guest.
    pub async fn exec(&self, request: &ExecRequest, within: Duration) -> Result<ExecOutput, Error> {
        let deadline = Instant::now() + within;
        let mut request = request.clone();
        if request.capture_output.is_none() {
            request = request.capture_output(true);
        }
        let left = || deadline.saturating_duration_since(Instant::now());
        let started: GuestExecResult = self.execute(&request).timeout(left()).await?;
        let mut pause = FIRST_POLL;
        loop {
            let status: GuestExecStatusResult = self
                .execute(&GuestExecStatus::new(started.pid))
                .timeout(left())
                .await?;
            if status.exited {
                return exec_output(status);
            }
            let wake = Instant::now() + pause;
            if wake >= deadline {
                return Err(Error::Timeout);
            }
            self.shared().runtime.sleep_until(wake).await;
            pause = (pause * 2).min(LONGEST_POLL);
        }
    }

    /// Reads a whole file of the guest: `guest-file-open` (mode `"r"`),
    /// `guest-file-read` until its end, `guest-file-close` (also after a
    /// failed read). Each command has the connection's call timeout.
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>, Error> {
        let handle: i64 = self.execute(&GuestFileOpen::new(path)).await?;
        let mut contents = Vec::new();
        let read = async {
            loop {
                let chunk = self
                    .execute(&GuestFileRead {
                        handle,
                        count: Some(FILE_CHUNK as i64),
                    })
                    .await?;
                contents.extend(decode_base64(&chunk.buf_b64)?);
                if chunk.eof || chunk.count == 0 {
                    return Ok::<_, Error>(());
                }
            }
        };
        let read = read.await;
        let closed = self.execute(&GuestFileClose { handle }).await;
        read?;
        closed?;
        Ok(contents)
    }

    /// Writes `contents` to a file of the guest, created or truncated:
    /// `guest-file-open` (mode `"w"`), `guest-file-write` in chunks of
    /// 1 MiB, `guest-file-close` (also after a failed write).
    pub async fn write_file(&self, path: &str, contents: &[u8]) -> Result<(), Error> {
        let handle: i64 = self.execute(&GuestFileOpen::new(path).mode("w")).await?;
        let write = async {
            for chunk in contents.chunks(FILE_CHUNK) {
                self.execute(&GuestFileWrite {
                    handle,
                    buf_b64: BASE64.encode(chunk),
                    count: None,
                })
                .await?;
            }
            Ok::<_, Error>(())
        };
        let written = write.await;
        let closed = self.execute(&GuestFileClose { handle }).await;
        written?;
        closed.map(drop)
    }

    /// `guest-fsfreeze-status`: whether the guest's file systems are
    /// frozen.
    pub async fn fsfreeze_status(&self) -> Result<GuestFsfreezeState, Error> {
        self.execute(&GuestFsfreezeStatus).await
    }

    /// `guest-fsfreeze-freeze`: freezes the guest's local file systems
    /// (before a backup), returning how many. Thaw them with
    /// [`fsfreeze_thaw`](Self::fsfreeze_thaw) whatever happens next.
    pub async fn fsfreeze_freeze(&self) -> Result<i64, Error> {
        self.execute(&GuestFsfreezeFreeze).await
    }

    /// `guest-fsfreeze-thaw`: thaws them, returning how many.
    pub async fn fsfreeze_thaw(&self) -> Result<i64, Error> {
        self.execute(&GuestFsfreezeThaw).await
    }

    /// `guest-shutdown` with `mode` (`"powerdown"`, `"halt"`, `"reboot"`;
    /// `None`: powerdown), which sends no reply on success: see
    /// [`AgentCall::no_reply`](super::AgentCall::no_reply).
    pub async fn shutdown(&self, mode: Option<&str>) -> Result<NoReply, Error> {
        let mut command = GuestShutdown::new();
        if let Some(mode) = mode {
            command = command.mode(mode);
        }
        self.call(GuestShutdown::NAME, &command).no_reply().await
    }
}

fn exec_output(status: GuestExecStatusResult) -> Result<ExecOutput, Error> {
    let decode = |data: &Option<String>| data.as_deref().map_or(Ok(Vec::new()), decode_base64);
    Ok(ExecOutput {
        exit_code: status.exitcode,
        signal: status.signal,
        stdout: decode(&status.out_data)?,
        stderr: decode(&status.err_data)?,
        truncated: status.out_truncated == Some(true) || status.err_truncated == Some(true),
    })
}

fn decode_base64(text: &str) -> Result<Vec<u8>, Error> {
    BASE64.decode(text).map_err(|e| {
        Error::Decode(Arc::new(serde::de::Error::custom(format!(
            "invalid base64 from the agent: {e}"
        ))))
    })
}
