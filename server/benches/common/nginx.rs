//! nginx serving a directory on loopback, for the side-by-side benchmarks (`transfer`, `serve`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use super::{free_addr, ServerProcess};

/// Starts nginx with `workers` worker processes serving `www` (ready once `ready_path` answers),
/// or returns `None` (after saying so) when it is not installed.
pub fn start_nginx(
    tmp: &Path,
    www: &Path,
    workers: usize,
    ready_path: &str,
) -> anyhow::Result<Option<ServerProcess>> {
    let Some(nginx) = find_nginx() else {
        eprintln!("nginx is not installed: skipping the nginx comparison (`apt-get install nginx`)");
        return Ok(None);
    };
    let prefix = tmp.join("nginx");
    std::fs::create_dir(&prefix)?;
    let addr = free_addr()?;
    let p = |name: &str| prefix.join(name).display().to_string();
    // Workers of a root master switch to `nobody` by default, who cannot read our 0700
    // temp dir; when we are root, keep them root.
    let user = if is_root(tmp)? { "user root;\n" } else { "" };
    let config = format!(
        "{user}daemon off;
worker_processes {workers};
pid {pid};
lock_file {lock};
error_log {error_log} warn;
events {{ worker_connections 1024; }}
http {{
types {{ application/octet-stream bin whl; text/html html; }}
default_type application/octet-stream;
sendfile on;
access_log off;
keepalive_requests 100000;
client_body_temp_path {body};
proxy_temp_path {proxy};
fastcgi_temp_path {fastcgi};
uwsgi_temp_path {uwsgi};
scgi_temp_path {scgi};
server {{
    listen {addr};
    root {root};
}}
}}
",
        pid = p("nginx.pid"),
        lock = p("nginx.lock"),
        error_log = p("error.log"),
        body = p("client_body_temp"),
        proxy = p("proxy_temp"),
        fastcgi = p("fastcgi_temp"),
        uwsgi = p("uwsgi_temp"),
        scgi = p("scgi_temp"),
        root = www.display(),
    );
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, config)?;
    let log = prefix.join("error.log");
    let child = Command::new(nginx)
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&prefix)
        .arg("-e")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start nginx")?;
    let mut server = ServerProcess { name: "nginx", child, addr, log };
    server.wait_ready(ready_path)?;
    Ok(Some(server))
}

/// `nginx` from PATH, or from the sbin directories a non-root PATH often lacks.
fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

/// Whether we run as root: the owner of a directory we just created.
fn is_root(dir: &Path) -> anyhow::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(dir)?.uid() == 0)
}
