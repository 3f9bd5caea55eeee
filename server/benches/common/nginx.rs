//! nginx serving a directory on loopback, for the side-by-side benchmarks (`transfer`, `serve`).

use std::net::SocketAddr;
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
    Ok(start(tmp, www, workers, ready_path, None)?.map(|(server, _)| server))
}

/// The same, also serving `www` over TLS 1.3 with `cert` and `key` (PEM files) on a second
/// address, which is returned beside the server (whose `addr` stays the plain one).
pub fn start_nginx_tls(
    tmp: &Path,
    www: &Path,
    workers: usize,
    ready_path: &str,
    cert: &Path,
    key: &Path,
) -> anyhow::Result<Option<(ServerProcess, SocketAddr)>> {
    let Some((server, tls)) = start(tmp, www, workers, ready_path, Some((cert, key)))? else {
        return Ok(None);
    };
    Ok(tls.map(|addr| (server, addr)))
}

fn start(
    tmp: &Path,
    www: &Path,
    workers: usize,
    ready_path: &str,
    tls: Option<(&Path, &Path)>,
) -> anyhow::Result<Option<(ServerProcess, Option<SocketAddr>)>> {
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
    let tls_addr = tls.map(|_| free_addr()).transpose()?;
    let tls_server = match (tls, tls_addr) {
        (Some((cert, key)), Some(tls_addr)) => format!(
            "server {{
    listen {tls_addr} ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    root {root};
}}
",
            cert = cert.display(),
            key = key.display(),
            root = www.display(),
        ),
        _ => String::new(),
    };
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
{tls_server}}}
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
    Ok(Some((server, tls_addr)))
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
