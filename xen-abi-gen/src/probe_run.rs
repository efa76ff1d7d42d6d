//! Runs the C conformance probe with a real (cross) compiler and compares the numbers.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::arch::{Arch, View};
use crate::emit::c_probe::{self, AbsentType, Headers, Mismatch, Probe};
use crate::model::{Spec, Version};

/// Why a probe could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The compiler is not installed.
    #[error("{arch}: compiler `{cc}` not found ({source}); install Debian's {package}")]
    NoCompiler {
        /// Architecture.
        arch: Arch,
        /// Compiler command.
        cc: String,
        /// Debian package providing it.
        package: &'static str,
        /// OS error.
        source: std::io::Error,
    },
    /// The probe did not compile: a name the spec uses is missing from the headers, or differs,
    /// or a header is missing altogether (then `hint` names the package that ships it). The
    /// message lists the errors by spec item and file:line (`explained`); the compiler's own
    /// output is in `stderr`.
    #[error(
        "{arch} ({view}): the probe does not compile against these headers; the errors by spec item:\n{explained}{hint}"
    )]
    Compile {
        /// Architecture.
        arch: Arch,
        /// View name.
        view: &'static str,
        /// Compiler output.
        stderr: String,
        /// The errors traced back to the spec.
        explained: Box<crate::probe_errors::Explained>,
        /// Empty, or a line naming the Debian packages whose headers the compiler looked for.
        hint: String,
    },
    /// With a release's headers, the compiler read a Xen header from somewhere else (the
    /// release lacks that file and the machine's own libxen-dev filled in).
    #[error("{arch} ({view}): the probe for {release} read {}, which is not among that release's headers in {}", header.display(), dir.display())]
    ForeignHeader {
        /// Architecture.
        arch: Arch,
        /// View name.
        view: &'static str,
        /// The release probed (`Xen 4.14`, `Linux 6.12`).
        release: String,
        /// The release's header directory.
        dir: PathBuf,
        /// The header read from elsewhere.
        header: PathBuf,
    },
    /// `--new-headers` holds none of the headers the spec describes.
    #[error("{} holds none of the headers the spec's files describe (lay it out like xen/: e.g. `trial.h` for a spec file with header = \"xen/trial.h\")", dir.display())]
    NoNewHeaders {
        /// The directory.
        dir: PathBuf,
    },
    /// The assembly could not be read.
    #[error("{arch}: cannot read the probe's assembly: {0}", arch = .1)]
    Asm(String, Arch),
    /// Temporary files.
    #[error("probe scratch directory {}: {source}", path.display())]
    Io {
        /// Path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// The compiler used for `arch` (overridable with `XEN_ABI_CC_<ARCH>`, e.g. `XEN_ABI_CC_ARM64`).
pub fn compiler(arch: Arch) -> (String, &'static str) {
    let var = format!("XEN_ABI_CC_{}", arch.name().to_ascii_uppercase());
    let (default, package) = match arch {
        Arch::X86_64 => ("gcc", "gcc"),
        Arch::X86_32 => ("i686-linux-gnu-gcc", "gcc-i686-linux-gnu"),
        Arch::Arm32 => ("arm-linux-gnueabihf-gcc", "gcc-arm-linux-gnueabihf"),
        Arch::Arm64 => ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
    };
    (
        std::env::var(var).unwrap_or_else(|_| default.to_owned()),
        package,
    )
}

/// The Debian package holding `arch`'s C library headers (`stdint.h` and what it includes),
/// which the cross compiler packages only recommend.
pub fn libc_package(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "libc6-dev",
        Arch::X86_32 => "libc6-dev-i386-cross",
        Arch::Arm32 => "libc6-dev-armhf-cross",
        Arch::Arm64 => "libc6-dev-arm64-cross",
    }
}

/// A hint for a compile error caused by a missing header: the Debian package that ships it.
fn missing_header_hint(arch: Arch, headers: Headers, stderr: &str) -> String {
    // gcc: "probe.c:5:10: fatal error: xen/xen.h: No such file or directory"
    // or the probe's own `#error "missing header <xen/x.h>"` (an `#error` does not stop gcc).
    let Some(name) = stderr.lines().find_map(|l| {
        if let Some((_, rest)) = l.split_once("#error \"missing header <") {
            return rest.split_once('>').map(|(h, _)| h);
        }
        let rest = l.split_once("fatal error: ")?.1;
        rest.strip_suffix(": No such file or directory")
    }) else {
        return String::new();
    };
    let package = match headers {
        Headers::Xen if name.starts_with("xen/") => {
            "libxen-dev (Xen's public headers); a header newer than a release's (a hypercall \
             being stabilised) is given with `--release R --new-headers DIR`"
        }
        Headers::LinuxUapi if name.starts_with("xen/") => match arch {
            Arch::X86_64 => "linux-libc-dev (the Linux uapi headers)",
            Arch::X86_32 => "linux-libc-dev-i386-cross (the Linux uapi headers)",
            Arch::Arm32 => "linux-libc-dev-armhf-cross (the Linux uapi headers)",
            Arch::Arm64 => "linux-libc-dev-arm64-cross (the Linux uapi headers)",
        },
        _ => libc_package(arch),
    };
    format!("\n{arch}: `{name}` is missing; Debian ships it in {package}")
}

/// Name of a view for messages.
pub fn view_name(view: View) -> &'static str {
    match view {
        View::Guest => "guest view",
        View::Tools => "tools view (-D__XEN_TOOLS__)",
    }
}

/// Result of one probe run.
#[derive(Debug)]
pub struct ProbeReport {
    /// The probe.
    pub probe: Probe,
    /// Differences (empty = the spec equals C).
    pub mismatches: Vec<Mismatch>,
    /// Bitfield positions that differ.
    pub bit_mismatches: Vec<c_probe::BitMismatch>,
    /// Every file the compiler read besides the probe itself, with symbolic links resolved
    /// (so the Xen headers appear under their real directory, not the include shim), sorted.
    /// The probe's own one-line uapi shim is left out: it is not a header of any package.
    pub headers: Vec<PathBuf>,
    /// Types the spec dates after the probed release that its headers declare all the same.
    pub present_types: Vec<AbsentType>,
    /// Structs whose `in_c = false` fields C does not leave as padding.
    pub pad_failures: Vec<PadFailure>,
}

/// A struct whose declared padding is not (only) padding in C: C has more members than the
/// spec names, or fewer.
#[derive(Clone, Debug)]
pub struct PadFailure {
    /// The proof that failed.
    pub proof: c_probe::PadProof,
    /// What the compiler said about its initialiser.
    pub compiler: Vec<String>,
}

impl std::fmt::Display for PadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.proof;
        write!(
            f,
            "{}: {}: the spec calls {} padding (in_c = false), but C's members are not exactly {}: {}",
            p.loc,
            p.item,
            p.pad_fields
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            p.members.join(", "),
            self.compiler.join("; ")
        )
    }
}

impl ProbeReport {
    /// Whether C and the spec agree on everything.
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty()
            && self.bit_mismatches.is_empty()
            && self.present_types.is_empty()
            && self.pad_failures.is_empty()
    }

    /// Number of checks made.
    pub fn count(&self) -> usize {
        self.probe.checks.len()
            + self.probe.bit_checks.len()
            + self.probe.absent_types.len()
            + self.probe.pad_proofs.len()
    }
}

/// The machine's Xen headers: `XEN_ABI_XEN_INCLUDE`, else `/usr/include/xen` (libxen-dev).
pub fn machine_xen_include() -> PathBuf {
    std::env::var_os("XEN_ABI_XEN_INCLUDE")
        .map_or_else(|| PathBuf::from("/usr/include/xen"), PathBuf::from)
}

/// One Xen release's public headers to probe instead of the machine's.
#[derive(Clone, Debug)]
pub struct Release {
    /// The release (`4.14`).
    pub version: Version,
    /// The directory holding its `xen/` headers' contents (e.g. an extracted libxen-dev's
    /// `usr/include/xen`).
    pub xen_include: PathBuf,
    /// New or patched headers on top of the release's (laid out like `xen/`: `trial.h`,
    /// `hvm/dm_op.h`), e.g. from the Xen tree that adds a hypercall: the spec files of those
    /// headers are measured against them whatever their `since`
    /// ([`c_probe::ReleaseHeaders`]).
    pub new_headers: Option<PathBuf>,
}

impl Release {
    /// Which spec headers the new headers provide and which neither they nor the release have.
    pub fn headers(&self, spec: &Spec) -> c_probe::ReleaseHeaders {
        let has = |dir: &Path, header: &str| {
            header
                .strip_prefix("xen/")
                .is_some_and(|rel| dir.join(rel).is_file())
        };
        let mut out = c_probe::ReleaseHeaders::default();
        for f in spec
            .files
            .iter()
            .filter(|f| !f.rel_path.starts_with("linux/"))
        {
            if self
                .new_headers
                .as_deref()
                .is_some_and(|d| has(d, &f.header))
            {
                out.new.insert(f.header.clone());
            } else if !has(&self.xen_include, &f.header) {
                out.missing.insert(f.header.clone());
            }
        }
        out
    }
}

fn scratch(tag: &str) -> Result<PathBuf, ProbeError> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "xen-abi-probe-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|source| ProbeError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<(), ProbeError> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|source| ProbeError::Io {
            path: p.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| ProbeError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// One Linux release's uapi `xen/` headers (`privcmd.h`, `evtchn.h`) to probe the `linux/*`
/// spec files against instead of the machine's.
#[derive(Clone, Debug)]
pub struct LinuxRelease {
    /// The kernel release (`6.12`); ioctls whose `linux` is later must be absent.
    pub version: String,
    /// The directory holding its `xen/` uapi headers (an extracted linux-libc-dev's
    /// `usr/include/xen`), searched first; `None`: the compilers' own (the machine's
    /// linux-libc-dev and its cross variants), which then are that release.
    pub xen_include: Option<PathBuf>,
}

/// What a probe is measured against besides the machine's headers.
#[derive(Clone, Copy)]
enum Against<'a> {
    Xen(&'a Release),
    Linux(&'a LinuxRelease),
}

impl<'a> Against<'a> {
    /// The release's own header directory, when it is not the compilers' default.
    fn include(self) -> Option<&'a Path> {
        match self {
            Against::Xen(r) => Some(&r.xen_include),
            Against::Linux(r) => r.xen_include.as_deref(),
        }
    }

    /// New headers searched before the release's own.
    fn overlay(self) -> Option<&'a Path> {
        match self {
            Against::Xen(r) => r.new_headers.as_deref(),
            Against::Linux(_) => None,
        }
    }

    fn label(&self) -> String {
        match self {
            Against::Xen(r) => format!("Xen {}", r.version),
            Against::Linux(r) => format!("Linux {}", r.version),
        }
    }
}

/// Generate, compile and compare one probe.
///
/// The include shim: cross compilers only search their own sysroot, where Debian's
/// cross `linux-libc-dev` puts the Linux uapi headers but not Xen's (libxen-dev installs them in
/// `/usr/include/xen` for the build architecture only, and they are architecture-independent).
/// So the probe adds a directory, searched last (`-idirafter`), holding `xen` → Xen's headers
/// (`XEN_ABI_XEN_INCLUDE`, default `/usr/include/xen`) and, for the uapi headers, a small
/// `xen/interface/xen.h` that defines `domid_t`, `xen_pfn_t` and `grant_ref_t`.
pub fn run(
    spec: &Spec,
    arch: Arch,
    view: View,
    headers: Headers,
) -> Result<ProbeReport, ProbeError> {
    run_for(spec, arch, view, headers, None)
}

/// [`run`] against one release's Xen headers: the shim is searched first (`-I`) so the
/// machine's own `/usr/include/xen` cannot stand in, every Xen header read must lie in the
/// release's directory, what the spec dates later must be absent (see
/// [`c_probe::c_probe_for`]), and each [`AbsentType`] must fail to compile.
pub fn run_for(
    spec: &Spec,
    arch: Arch,
    view: View,
    headers: Headers,
    release: Option<&Release>,
) -> Result<ProbeReport, ProbeError> {
    let probe = match release {
        Some(r) if headers == Headers::Xen => {
            let have = r.headers(spec);
            if let (Some(dir), true) = (&r.new_headers, have.new.is_empty()) {
                return Err(ProbeError::NoNewHeaders { dir: dir.clone() });
            }
            c_probe::c_probe_release(spec, arch, view, r.version, &have)
        }
        _ => c_probe::c_probe_for(spec, arch, view, headers, release.map(|r| r.version)),
    };
    run_probe(spec, probe, release.map(Against::Xen))
}

/// The `linux/*` files against one Linux release's uapi headers: its `xen/` directory is
/// searched first, every uapi Xen header read must be its own, and ioctls the spec dates to a
/// later kernel must be absent.
pub fn run_linux_for(
    spec: &Spec,
    arch: Arch,
    view: View,
    kernel: &LinuxRelease,
) -> Result<ProbeReport, ProbeError> {
    let probe = c_probe::c_probe_linux_for(spec, arch, view, &kernel.version);
    run_probe(spec, probe, Some(Against::Linux(kernel)))
}

fn run_probe(
    spec: &Spec,
    probe: Probe,
    against: Option<Against<'_>>,
) -> Result<ProbeReport, ProbeError> {
    let (arch, view, headers) = (probe.arch, probe.view, probe.headers);
    let dir = scratch(arch.name())?;
    let result = (|| {
        let shim = dir.join("shim");
        match headers {
            Headers::Xen => {
                let xen = match against.and_then(|r| r.include()) {
                    Some(dir) => dir.to_path_buf(),
                    None => machine_xen_include(),
                };
                std::fs::create_dir_all(&shim).map_err(|source| ProbeError::Io {
                    path: shim.clone(),
                    source,
                })?;
                match against.and_then(|r| r.overlay()) {
                    // One `xen/` of links: the overlay's files over the release's, so that a
                    // new header's `#include "xen.h"` finds the release's.
                    Some(new) => {
                        link_tree(&xen, &shim.join("xen"))?;
                        link_tree(new, &shim.join("xen"))?;
                    }
                    None => {
                        #[cfg(unix)]
                        std::os::unix::fs::symlink(&xen, shim.join("xen")).map_err(|source| {
                            ProbeError::Io {
                                path: shim.join("xen"),
                                source,
                            }
                        })?;
                    }
                }
            }
            Headers::LinuxUapi => write(&shim.join(c_probe::UAPI_SHIM.0), c_probe::UAPI_SHIM.1)?,
        }
        // A kernel release's xen/ uapi headers, searched before the compilers' own.
        let kernel_dir = dir.join("kernel");
        let kernel_include = against.and_then(|k| k.include());
        if let (Headers::LinuxUapi, Some(k)) = (headers, kernel_include) {
            std::fs::create_dir_all(&kernel_dir).map_err(|source| ProbeError::Io {
                path: kernel_dir.clone(),
                source,
            })?;
            #[cfg(unix)]
            std::os::unix::fs::symlink(k, kernel_dir.join("xen")).map_err(|source| {
                ProbeError::Io {
                    path: kernel_dir.join("xen"),
                    source,
                }
            })?;
        }
        let (cc, package) = compiler(arch);
        let command = |src: &Path| {
            let mut cmd = Command::new(&cc);
            cmd.arg("-std=gnu11").arg("-O0");
            match view {
                View::Guest => cmd.arg(format!(
                    "-D__XEN_INTERFACE_VERSION__={:#010x}",
                    spec.interface_version
                )),
                View::Tools => cmd.arg("-D__XEN_TOOLS__"),
            };
            match (headers, against) {
                (Headers::Xen, Some(_)) => cmd.arg("-I").arg(&shim),
                (Headers::LinuxUapi, Some(_)) if kernel_include.is_some() => {
                    cmd.arg("-I").arg(&kernel_dir).arg("-idirafter").arg(&shim)
                }
                _ => cmd.arg("-idirafter").arg(&shim),
            };
            cmd.arg(src);
            cmd
        };
        let spawn_error = |source| ProbeError::NoCompiler {
            arch,
            cc: cc.clone(),
            package,
            source,
        };
        let src = dir.join("probe.c");
        write(&src, &probe.source)?;
        let deps = dir.join("probe.d");
        let out = command(&src)
            .arg("-S")
            .arg("-o")
            .arg("-")
            .arg("-MD")
            .arg("-MF")
            .arg(&deps)
            .output()
            .map_err(spawn_error)?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            return Err(ProbeError::Compile {
                arch,
                view: view_name(view),
                explained: Box::new(crate::probe_errors::explain(
                    spec, &probe, "probe.c", &stderr,
                )),
                hint: missing_header_hint(arch, headers, &stderr),
                stderr,
            });
        }
        let deps = std::fs::read_to_string(&deps).map_err(|source| ProbeError::Io {
            path: deps.clone(),
            source,
        })?;
        let read = headers_read(&deps, &dir);
        if let Some(r) = against.filter(|r| r.include().is_some()) {
            check_release_headers(&read, r, arch, view)?;
        }
        let asm = String::from_utf8_lossy(&out.stdout);
        let values = c_probe::parse_asm(&asm).map_err(|e| ProbeError::Asm(e, arch))?;
        let mismatches = c_probe::compare(&probe, &values).map_err(|e| ProbeError::Asm(e, arch))?;
        let bits = c_probe::compare_bits(&probe, &asm).map_err(|e| ProbeError::Asm(e, arch))?;
        let present = present_among(&probe.absent_types, &dir, &command, &spawn_error)?;
        let pads = pad_failures(&probe, &dir, &command, &spawn_error)?;
        Ok((mismatches, bits, read, present, pads))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let (mismatches, bit_mismatches, headers, present_types, pad_failures) = result?;
    Ok(ProbeReport {
        mismatches,
        bit_mismatches,
        probe,
        headers,
        present_types,
        pad_failures,
    })
}

/// The padding proofs that do not compile cleanly: one compiler run; every diagnostic on a
/// proof's line (an initialiser that leaves a member out, or has one too many) fails it.
fn pad_failures(
    probe: &Probe,
    dir: &Path,
    command: &dyn Fn(&Path) -> Command,
    spawn_error: &dyn Fn(std::io::Error) -> ProbeError,
) -> Result<Vec<PadFailure>, ProbeError> {
    if probe.pad_proofs.is_empty() {
        return Ok(Vec::new());
    }
    let (text, first) = c_probe::PadProof::source(&probe.prelude, &probe.pad_proofs);
    let src = dir.join("padding.c");
    write(&src, &text)?;
    let out = command(&src)
        .arg("-fsyntax-only")
        .output()
        .map_err(spawn_error)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut said: Vec<Vec<String>> = vec![Vec::new(); probe.pad_proofs.len()];
    for l in stderr.lines() {
        // "/tmp/.../padding.c:12:21: error: missing initializer for field 'x' of ..."
        let Some((_, rest)) = l.split_once("padding.c:") else {
            continue;
        };
        let mut parts = rest.splitn(3, ':');
        let line: Option<usize> = parts.next().and_then(|n| n.parse().ok());
        let (_col, msg) = (parts.next(), parts.next().unwrap_or("").trim());
        let Some(i) = line.and_then(|n| n.checked_sub(first)) else {
            continue;
        };
        if let Some(s) = said.get_mut(i) {
            if !msg.starts_with("note:") {
                s.push(msg.to_owned());
            }
        }
    }
    if !out.status.success() && said.iter().all(Vec::is_empty) {
        let stderr = stderr.into_owned();
        return Err(ProbeError::Compile {
            arch: probe.arch,
            view: view_name(probe.view),
            explained: Box::new(crate::probe_errors::Explained {
                untraced: stderr.lines().map(str::to_owned).collect(),
                ..Default::default()
            }),
            stderr,
            hint: String::new(),
        });
    }
    Ok(probe
        .pad_proofs
        .iter()
        .zip(said)
        .filter(|(_, s)| !s.is_empty())
        .map(|(p, compiler)| PadFailure {
            proof: p.clone(),
            compiler,
        })
        .collect())
}

/// Mirror the files below `from` into `to` as symbolic links (replacing links already there),
/// creating directories.
fn link_tree(from: &Path, to: &Path) -> Result<(), ProbeError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ProbeError::Io { path, source }
    };
    std::fs::create_dir_all(to).map_err(io(to))?;
    for e in std::fs::read_dir(from).map_err(io(from))? {
        let e = e.map_err(io(from))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            link_tree(&src, &dst)?;
        } else {
            if dst.symlink_metadata().is_ok() {
                std::fs::remove_file(&dst).map_err(io(&dst))?;
            }
            #[cfg(unix)]
            std::os::unix::fs::symlink(&src, &dst).map_err(io(&dst))?;
        }
    }
    Ok(())
}

/// Which of the things that must be absent compile all the same. One compiler run checks them
/// all: it reports each failing file by name, and whatever file it does not name compiled.
fn present_among(
    absent: &[AbsentType],
    dir: &Path,
    command: &dyn Fn(&Path) -> Command,
    spawn_error: &dyn Fn(std::io::Error) -> ProbeError,
) -> Result<Vec<AbsentType>, ProbeError> {
    if absent.is_empty() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for (i, t) in absent.iter().enumerate() {
        let src = dir.join(format!("absent-{i}.c"));
        write(&src, &t.probe_source)?;
        files.push(src);
    }
    let mut cmd = command(&files[0]);
    cmd.args(&files[1..]).arg("-fsyntax-only");
    let out = cmd.output().map_err(spawn_error)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    Ok(absent
        .iter()
        .enumerate()
        .filter(|(i, _)| !stderr.contains(&format!("absent-{i}.c:")))
        .map(|(_, t)| t.clone())
        .collect())
}

/// Every header read from a `xen/` include directory must be the release's own (the probe's
/// shim lies in its scratch directory and is not among `read`).
fn check_release_headers(
    read: &[PathBuf],
    release: Against<'_>,
    arch: Arch,
    view: View,
) -> Result<(), ProbeError> {
    let Some(include) = release.include() else {
        return Ok(());
    };
    let dir = include.canonicalize().map_err(|source| ProbeError::Io {
        path: include.to_path_buf(),
        source,
    })?;
    let overlay = release.overlay().and_then(|o| o.canonicalize().ok());
    let foreign = read.iter().find(|h| {
        !h.starts_with(&dir)
            && !overlay.as_ref().is_some_and(|o| h.starts_with(o))
            && h.parent()
                .is_some_and(|p| p.ancestors().any(|a| a.ends_with("include/xen")))
    });
    match foreign {
        Some(h) => Err(ProbeError::ForeignHeader {
            arch,
            view: view_name(view),
            release: release.label(),
            dir,
            header: h.clone(),
        }),
        None => Ok(()),
    }
}

/// The files named in a make-style dependency file (`-MD`) other than the probe and whatever
/// lies in its scratch directory, canonicalised, sorted and without duplicates.
fn headers_read(deps: &str, scratch: &Path) -> Vec<PathBuf> {
    // "probe.o: a.h \\\n b.h ...": the target is everything up to the first ": ".
    let list = deps.split_once(": ").map_or("", |(_, rest)| rest);
    let scratch = scratch
        .canonicalize()
        .unwrap_or_else(|_| scratch.to_path_buf());
    let mut out: Vec<PathBuf> = list
        .split_whitespace()
        .filter(|w| *w != "\\")
        .map(|w| {
            let p = Path::new(w);
            p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
        })
        .filter(|p| !p.starts_with(&scratch))
        .collect();
    out.sort();
    out.dedup();
    out
}
