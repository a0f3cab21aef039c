//! The static binary in an otherwise empty root: no libc, no NSS modules, no `/proc`,
//! only busybox, a token, `/etc/hosts` and `/etc/resolv.conf`, as in a scratch image.
//!
//! Builds the binary with `scripts/build-exec.sh` (its own target directory, so no lock
//! is shared with the cargo running this test), then runs it under `chroot`. Needs root
//! (chroot, and DNS on port 53) and Debian's `busybox-static`.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use agyn_test_support_macros::needs;
use common::dns::{Data, DnsServer, Zone};
use common::https::{HttpsServer, Reply, Step};
use common::{OTHER_VALUE, Pki, TOKEN, VALUE, assert_no_secret, env_body};

const BUSYBOX: &str = "/bin/busybox";
const HOSTS_NAME: &str = "agyn-secrets.agyn-secrets.svc";
const DNS_NAME: &str = "agyn-secrets-dns.agyn-secrets.svc";

/// Builds the static binary once for this file's tests.
fn static_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let output = Command::new(workspace.join("scripts/build-exec.sh"))
            .current_dir(workspace)
            .output()
            .expect("cannot run scripts/build-exec.sh");
        assert!(
            output.status.success(),
            "scripts/build-exec.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        PathBuf::from(stdout.lines().last().expect("the script printed no path"))
    })
}

/// Whether an ELF file asks for a program interpreter (the dynamic loader).
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([elf[at], elf[at + 1]]));
    let offset = usize::try_from(u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap())).unwrap();
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = offset + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == PT_INTERP
    })
}

#[test]
fn the_binary_is_static() {
    let binary = static_binary();
    assert!(
        !has_interpreter(&std::fs::read(binary).unwrap()),
        "{} has a PT_INTERP",
        binary.display()
    );
    assert!(
        has_interpreter(&std::fs::read("/bin/sh").unwrap()),
        "the check itself must see a dynamic binary"
    );
    match Command::new("ldd").arg(binary).output() {
        Ok(output) => {
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(
                said.contains("statically linked") || said.contains("not a dynamic executable"),
                "ldd says: {said}"
            );
        }
        Err(error) => eprintln!("ldd is not available ({error}); the ELF check above stands"),
    }
}

/// A root holding only the binary, busybox, a token and the resolver's files.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new(dns_ip: Ipv4Addr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        let copy = |from: &Path, to: &str| {
            let target = path.join(to);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(from, &target).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        copy(static_binary(), "agyn-secrets");
        copy(Path::new(BUSYBOX), "bin/busybox");
        let write = |to: &str, text: &str| {
            let target = path.join(to);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, text).unwrap();
        };
        write("var/run/secrets/agyn-secrets/token", &format!("{TOKEN}\n"));
        write(
            "etc/hosts",
            &format!("127.0.0.1 localhost\n127.0.0.1 {HOSTS_NAME}\n"),
        );
        write(
            "etc/resolv.conf",
            &format!(
                "search team-a.svc.cluster.local svc.cluster.local cluster.local\nnameserver {dns_ip}\noptions ndots:5 timeout:2 attempts:2\n"
            ),
        );
        std::fs::create_dir(path.join("shared")).unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `/agyn-secrets ARGS...` inside the root with only `env` set.
    fn run(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        Command::new(chroot())
            .arg(self.path())
            .arg("/agyn-secrets")
            .args(args)
            .env_clear()
            .env("PATH", "/bin")
            .envs(env.iter().map(|(n, v)| (n, v)))
            .output()
            .expect("cannot run chroot")
    }
}

/// The chroot program, found in this process's PATH (the command's own PATH is the
/// root's `/bin`, which is where a bare name would be looked up).
fn chroot() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("chroot"))
        .find(|path| path.is_file())
        .expect("chroot is not installed (Debian: coreutils)")
}

fn preconditions() -> bool {
    if !Path::new(BUSYBOX).exists() {
        common::skip(
            "the empty-root test needs /bin/busybox (Debian: apt-get install busybox-static)",
        );
        return false;
    }
    common::require_root("the empty-root test (chroot, DNS on port 53)")
}

fn settings(url: String, pki: &Pki) -> Vec<(&'static str, String)> {
    vec![
        ("AGYN_EXEC_URL", url),
        ("AGYN_EXEC_CA", pki.ca_pem.clone()),
        ("AGYN_EXEC_CONTAINER", "app".into()),
        ("AGYN_EXEC_TIMEOUT", "20s".into()),
    ]
}

fn assert_values_printed(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status
    );
    assert_no_secret(&stderr);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.contains(&format!("API_KEY={VALUE}").as_str()),
        "{stdout}"
    );
    assert!(
        lines.contains(&format!("DATABASE_URL={OTHER_VALUE}").as_str()),
        "{stdout}"
    );
    assert!(
        lines.iter().all(|l| !l.starts_with("AGYN_EXEC_")),
        "{stdout}"
    );
}

#[needs(busybox, root)]
#[test]
fn runs_in_an_empty_root_with_a_name_from_the_hosts_file() {
    if !preconditions() {
        return;
    }
    let pki = Pki::new(&[HOSTS_NAME]);
    let server = HttpsServer::start(&pki, vec![Step::Reply(Reply::json(200, env_body()))]);
    let root = Root::new(Ipv4Addr::new(127, 0, 0, 153));
    let output = root.run(
        &["exec", "--", "/bin/busybox", "env"],
        &settings(server.url(HOSTS_NAME), &pki),
    );
    assert_values_printed(&output);
    let request = &server.received()[0];
    assert_eq!(request.sni.as_deref(), Some(HOSTS_NAME));
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
}

#[needs(busybox, root)]
#[test]
fn runs_in_an_empty_root_with_a_name_from_dns() {
    if !preconditions() {
        return;
    }
    let dns_ip = Ipv4Addr::new(127, 0, 0, 153);
    let full = format!("{DNS_NAME}.cluster.local");
    let dns = DnsServer::start(
        IpAddr::V4(dns_ip),
        53,
        Zone::new().record(&full, Data::A(Ipv4Addr::LOCALHOST)),
    );
    let pki = Pki::new(&[DNS_NAME, &full]);
    let server = HttpsServer::start(&pki, vec![Step::Reply(Reply::json(200, env_body()))]);
    let root = Root::new(dns_ip);
    let output = root.run(
        &["exec", "--", "/bin/busybox", "env"],
        &settings(server.url(DNS_NAME), &pki),
    );
    assert_values_printed(&output);
    assert_eq!(
        dns.names_asked(),
        [
            format!("{DNS_NAME}.team-a.svc.cluster.local"),
            format!("{DNS_NAME}.svc.cluster.local"),
            full,
        ]
    );
    assert_eq!(server.received()[0].sni.as_deref(), Some(DNS_NAME));
}

#[needs(busybox, root)]
#[test]
fn installs_itself_in_an_empty_root() {
    if !preconditions() {
        return;
    }
    let root = Root::new(Ipv4Addr::new(127, 0, 0, 154));
    let output = root.run(&["install", "/shared"], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let installed = root.path().join("shared/agyn-secrets");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(static_binary()).unwrap()
    );
    assert_eq!(
        std::fs::metadata(&installed).unwrap().mode() & 0o7777,
        0o555
    );

    // And the installed copy runs, as the application container runs it.
    let help = Command::new(chroot())
        .arg(root.path())
        .args(["/shared/agyn-secrets", "--help"])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "{}",
        String::from_utf8_lossy(&help.stderr)
    );
}
