//! `xen-abi-gen`: generate, check and inspect the Xen stable-ABI bindings.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use xen_abi_gen::workflow::{self, REGENERATE};
use xen_abi_gen::{Arch, View};

#[derive(Parser)]
#[command(
    version,
    about = "Generate and check Rust bindings for Xen's stable ABI"
)]
struct Cli {
    /// Spec directory.
    #[arg(long, global = true, default_value = "abi-spec")]
    spec: PathBuf,
    /// Output directory of the generated Rust modules.
    #[arg(long, global = true, default_value = "xen-sys/src/generated")]
    out: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Regenerate the bindings and print a summary.
    Generate,
    /// Fail if the committed bindings differ from what the spec generates.
    Check,
    /// Print an item's size, alignment and field offsets per architecture.
    Layout {
        /// C or Rust name of the item.
        item: Option<String>,
        /// Only this architecture (x86_32, x86_64, arm32, arm64).
        #[arg(long)]
        arch: Option<Arch>,
        /// JSON output, one object per architecture.
        #[arg(long)]
        json: bool,
        /// Every struct and union.
        #[arg(long)]
        all: bool,
        /// Lay out as a `__XEN_TOOLS__` build instead of the guest view Rust follows.
        #[arg(long)]
        tools: bool,
    },
    /// Compare two spec directories: list additions, fail on any change to an existing item.
    Diff {
        /// The old spec (e.g. the last release's `abi-spec`).
        old: PathBuf,
        /// The new spec.
        new: PathBuf,
    },
    /// Check the spec against the real C headers with the real (cross) compilers.
    CProbe {
        /// Only this architecture (default: all four).
        #[arg(long)]
        arch: Option<Arch>,
        /// Only this view (default: both): `guest` or `tools`.
        #[arg(long)]
        view: Option<String>,
        /// Check the linux/* files against the Linux uapi headers instead of Xen's.
        #[arg(long)]
        uapi: bool,
        /// Print the C source instead of compiling it.
        #[arg(long)]
        emit: bool,
        /// After the checks, print every header file the compilers read (one canonical path per
        /// line, `header PATH`), e.g. to find the Debian package each comes from.
        #[arg(long)]
        headers_used: bool,
        /// The Xen release the headers are (e.g. `4.14`): what the spec dates later must be
        /// absent from them, everything else must match. Without it, they must be the spec's
        /// newest release (`[spec] xen`).
        #[arg(long, value_parser = parse_version)]
        release: Option<xen_abi_gen::model::Version>,
        /// That release's `xen/` header directory (an extracted libxen-dev's
        /// `usr/include/xen`; default: the machine's, `XEN_ABI_XEN_INCLUDE` or
        /// `/usr/include/xen`).
        #[arg(long, requires = "release")]
        xen_include: Option<PathBuf>,
        /// New or patched headers on top of the release's, laid out like `xen/` (e.g. the
        /// `trial.h` a Xen tree adds, or that tree's whole `xen/include/public`): the spec
        /// files of the headers found there are measured against them whatever their `since`
        /// (items being stabilised for a release newer than any packaged one). The items so
        /// checked are listed.
        #[arg(long, requires = "release")]
        new_headers: Option<PathBuf>,
        /// With `--uapi`: the Linux release the uapi headers are (e.g. `6.12`): what the spec
        /// dates to a later kernel must be absent. Without it, they must have everything.
        #[arg(long, requires = "uapi")]
        linux_release: Option<String>,
        /// That release's uapi `xen/` directory (an extracted linux-libc-dev's
        /// `usr/include/xen`; default: the compilers' own, i.e. the machine's linux-libc-dev).
        #[arg(long, requires = "linux_release")]
        linux_include: Option<PathBuf>,
    },
}

fn parse_version(s: &str) -> Result<xen_abi_gen::model::Version, String> {
    xen_abi_gen::model::Version::parse(s).ok_or_else(|| format!("`{s}` is not a release like 4.17"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, workflow::Error> {
    match cli.cmd {
        Cmd::Generate => {
            let t = Instant::now();
            let g = workflow::generate(&cli.spec)?;
            workflow::write(&g.files, &cli.out)?;
            print!("{}", xen_abi_gen::emit::summary::summary(&g.spec));
            println!(
                "wrote {} files to {} in {:.0?}",
                g.files.len(),
                cli.out.display(),
                t.elapsed()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check => {
            let g = workflow::generate(&cli.spec)?;
            let stale = workflow::stale(&g.files, &cli.out);
            if stale.is_empty() {
                println!(
                    "{}: up to date ({} files)",
                    cli.out.display(),
                    g.files.len()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("the committed bindings in {} are stale:", cli.out.display());
                for (f, why) in &stale {
                    eprintln!("  {}/{f} {why}", cli.out.display());
                }
                eprintln!("fix: run `{REGENERATE}` and commit the result");
                Ok(ExitCode::FAILURE)
            }
        }
        Cmd::Diff { old, new } => {
            let o = xen_abi_gen::spec::load(&old)?;
            let n = xen_abi_gen::spec::load(&new)?;
            let r = xen_abi_gen::diff::diff(&o, &n);
            print!("{r}");
            if r.is_compatible() {
                println!(
                    "compatible: {} is a superset of {}",
                    new.display(),
                    old.display()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "INCOMPATIBLE: {} change(s) to stable items; a stable item never changes: add a new one instead",
                    r.broken.len()
                );
                Ok(ExitCode::FAILURE)
            }
        }
        Cmd::CProbe {
            arch,
            view,
            uapi,
            emit,
            headers_used,
            release,
            xen_include,
            new_headers,
            linux_release,
            linux_include,
        } => {
            let release = release.map(|version| xen_abi_gen::probe_run::Release {
                version,
                xen_include: xen_include
                    .unwrap_or_else(xen_abi_gen::probe_run::machine_xen_include),
                new_headers,
            });
            let kernel = linux_release.map(|version| xen_abi_gen::probe_run::LinuxRelease {
                version,
                xen_include: linux_include,
            });
            c_probe_cmd(
                &cli.spec,
                arch,
                view,
                uapi,
                emit,
                headers_used,
                (release.as_ref(), kernel.as_ref()),
            )
        }
        Cmd::Layout {
            item,
            arch,
            json,
            all,
            tools,
        } => {
            let spec = xen_abi_gen::spec::load(&cli.spec)?;
            let arches: Vec<Arch> = match arch {
                Some(a) => vec![a],
                None => Arch::ALL.to_vec(),
            };
            let view = if tools { View::Tools } else { View::Guest };
            let names = match (item, all) {
                (Some(i), false) => vec![i],
                (None, true) => workflow::compound_names(&spec),
                _ => {
                    eprintln!("give an item name or --all");
                    return Ok(ExitCode::from(2));
                }
            };
            for n in names {
                for l in workflow::layouts(&spec, &n, &arches, view)? {
                    if json {
                        println!("{}", serde_json::to_string(&l).unwrap_or_default());
                    } else {
                        print!("{}", workflow::layout_text(&l));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn c_probe_cmd(
    spec_dir: &std::path::Path,
    arch: Option<Arch>,
    view: Option<String>,
    uapi: bool,
    emit: bool,
    headers_used: bool,
    (release, kernel): (
        Option<&xen_abi_gen::probe_run::Release>,
        Option<&xen_abi_gen::probe_run::LinuxRelease>,
    ),
) -> Result<ExitCode, workflow::Error> {
    use xen_abi_gen::emit::c_probe::{self, Headers};
    use xen_abi_gen::probe_run;
    let spec = xen_abi_gen::spec::load(spec_dir)?;
    let arches: Vec<Arch> = arch.map(|a| vec![a]).unwrap_or_else(|| Arch::ALL.to_vec());
    let views: Vec<View> = match view.as_deref() {
        None => vec![View::Guest, View::Tools],
        Some("guest") => vec![View::Guest],
        Some("tools") => vec![View::Tools],
        Some(v) => {
            eprintln!("unknown view `{v}` (guest or tools)");
            return Ok(ExitCode::from(2));
        }
    };
    let headers = if uapi {
        Headers::LinuxUapi
    } else {
        Headers::Xen
    };
    if emit {
        for a in &arches {
            for v in &views {
                let p = match (kernel, release) {
                    (Some(k), _) => c_probe::c_probe_linux_for(&spec, *a, *v, &k.version),
                    (None, Some(r)) if !uapi => {
                        c_probe::c_probe_release(&spec, *a, *v, r.version, &r.headers(&spec))
                    }
                    (None, _) => {
                        c_probe::c_probe_for(&spec, *a, *v, headers, release.map(|r| r.version))
                    }
                };
                print!("{}", p.source);
                for t in &p.absent_types {
                    print!("{}", t.probe_source);
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    let mut read = std::collections::BTreeSet::new();
    let mut new_items = std::collections::BTreeSet::new();
    for a in &arches {
        for v in &views {
            let (cc, _) = probe_run::compiler(*a);
            let vn = match (release, kernel) {
                (_, Some(k)) => format!("Linux {} {}", k.version, probe_run::view_name(*v)),
                (Some(r), None) => format!("Xen {} {}", r.version, probe_run::view_name(*v)),
                (None, None) => probe_run::view_name(*v).to_owned(),
            };
            let report = match kernel {
                Some(k) => probe_run::run_linux_for(&spec, *a, *v, k),
                None => probe_run::run_for(&spec, *a, *v, headers, release),
            };
            if let Ok(r) = &report {
                read.extend(r.headers.iter().cloned());
                new_items.extend(r.probe.new_items.iter().cloned());
            }
            match report {
                Ok(r) if r.ok() => {
                    let counts: Vec<String> = c_probe::tally(&r.probe)
                        .iter()
                        .map(|(k, n)| format!("{n} {k}"))
                        .collect();
                    println!(
                        "ok   {a:<7} {vn:<30} {cc}: {} checks ({})",
                        r.count(),
                        counts.join(", ")
                    );
                }
                Ok(r) => {
                    failed = true;
                    println!(
                        "FAIL {a:<7} {vn:<30} {cc}: {} of {} checks differ",
                        r.mismatches.len()
                            + r.bit_mismatches.len()
                            + r.present_types.len()
                            + r.pad_failures.len(),
                        r.count()
                    );
                    for m in &r.mismatches {
                        println!("  {a}: {m}");
                    }
                    for m in &r.bit_mismatches {
                        println!("  {a}: {m}");
                    }
                    for p in &r.pad_failures {
                        println!("  {a}: {p}");
                    }
                    for t in &r.present_types {
                        let name = match &t.field {
                            Some(f) => format!("{}.{f}", t.item),
                            None => t.item.clone(),
                        };
                        println!(
                            "  {a}: {name}: the spec dates it {}, but this release's <{}> declares it",
                            t.dated, t.header
                        );
                    }
                }
                Err(e) => {
                    failed = true;
                    println!("FAIL {e}");
                }
            }
        }
    }
    if let Some((r, dir)) = release.and_then(|r| Some((r, r.new_headers.as_ref()?))) {
        let overlaid: Vec<String> = r.headers(&spec).new.into_iter().collect();
        println!(
            "new headers from {}: {}",
            dir.display(),
            overlaid.join(", ")
        );
        if new_items.is_empty() {
            println!(
                "new items (dated after Xen {}) checked against them: none",
                r.version
            );
        } else {
            println!(
                "new items (dated after Xen {}) checked against them: {} ({})",
                r.version,
                new_items.iter().cloned().collect::<Vec<_>>().join(", "),
                new_items.len()
            );
        }
    }
    if headers_used {
        for h in &read {
            println!("header {}", h.display());
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
