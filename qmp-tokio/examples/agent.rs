//! The guest agent client against a real `qemu-ga`, started here on the
//! host with an allow-list of harmless commands (an agent on the host acts
//! on the host), or against the agent socket given as the first argument.
//!
//! ```sh
//! cargo run -p qmp-tokio --example agent              # starts qemu-ga itself
//! cargo run -p qmp-tokio --example agent -- /run/vm1/qga.sock
//! ```

use qmp_tokio::agent::{AgentOptions, ExecRequest};
use qmp_tokio::GuestAgent;
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("qga-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (socket, mut started) = match std::env::args().nth(1) {
        Some(socket) => (socket.into(), None),
        None => {
            let socket = dir.join("qga.sock");
            let agent = Command::new("qemu-ga")
                .args(["-m", "unix-listen", "-p"])
                .arg(&socket)
                .arg("-t")
                .arg(&dir)
                .args(["-a", "guest-sync-delimited,guest-ping,guest-info,guest-get-osinfo,guest-exec,guest-exec-status"])
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start qemu-ga (apt install qemu-guest-agent): {e}"))?;
            (socket, Some(agent))
        }
    };
    let result = talk(&socket).await;
    if let Some(agent) = &mut started {
        // Stopped by its pid, which we started.
        agent.kill()?;
        agent.wait()?;
    }
    std::fs::remove_dir_all(&dir).ok();
    result
}

async fn talk(socket: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    // The agent we just started may not listen yet: retry connecting
    // within a deadline, then wait until it answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let agent = loop {
        match GuestAgent::connect_unix(socket, AgentOptions::default()).await {
            Ok(agent) => break agent,
            Err(e) if e.is_socket_not_available() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    agent.wait_until_ready(Duration::from_secs(10)).await?;
    let info = agent.info().await?;
    let os = agent.osinfo().await?;
    println!(
        "agent {} on {}",
        info.version,
        os.pretty_name.as_deref().unwrap_or("an unknown OS")
    );
    let uname = ExecRequest::new("/bin/uname").arg("-sr");
    let output = agent.exec(&uname, Duration::from_secs(10)).await?;
    print!("uname -sr: {}", String::from_utf8_lossy(&output.stdout));
    Ok(())
}
