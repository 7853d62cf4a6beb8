//! Generates include/veltix.h from the `ffi` module with cbindgen. The
//! header is committed; the test command fails if a build changes it.

use std::env;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=src/ffi");
    link_args_for_the_abi_version();
    println!("cargo:rerun-if-changed=cbindgen.toml");

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable");
    // Version macros come from Cargo.toml, so they cannot drift from it.
    let version = |part: &str| env::var(format!("CARGO_PKG_VERSION_{part}")).expect("set by cargo");
    config.after_includes = Some(format!(
        "\n/** Major version of this header (the library's runtime version is veltix_version()). */\n\
         #define VELTIX_VERSION_MAJOR {}\n/** Minor version of this header. */\n#define VELTIX_VERSION_MINOR {}\n\
         /** Patch version of this header. */\n#define VELTIX_VERSION_PATCH {}\n\
         /** The library version as a string literal. */\n#define VELTIX_VERSION_STRING \"{}\"\n\
         /** The Veltix protocol version spoken (\"MAJOR.MINOR\"). */\n#define VELTIX_PROTOCOL_VERSION \"1.0\"\n\n\
         /** The handle veltix_*_event_fd() gives: a file descriptor on POSIX, a SOCKET on Windows. */\n\
         #if defined(_WIN32)\ntypedef uintptr_t veltix_socket_t;\n#else\ntypedef int veltix_socket_t;\n#endif\n\
         /** No handle: -1 on POSIX, INVALID_SOCKET on Windows. */\n\
         #define VELTIX_INVALID_SOCKET ((veltix_socket_t)-1)\n",
        version("MAJOR"),
        version("MINOR"),
        version("PATCH"),
        env::var("CARGO_PKG_VERSION").expect("set by cargo"),
    ));

    // Only the ffi module (which cbindgen follows into its submodules) is
    // the C API; the rest of the crate stays out of the header.
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen could not generate veltix.h")
        .write(&mut generated);
    let header = strict_c89(&String::from_utf8(generated).expect("cbindgen writes UTF-8"));
    let path = crate_dir.join("include/veltix.h");
    // Rewritten only when it changes, so builds do not touch its mtime.
    if std::fs::read_to_string(&path).ok().as_deref() != Some(header.as_str()) {
        std::fs::write(&path, header).expect("include/veltix.h is writable");
    }
}

/// The ABI version as the target's linker records it (the README's ABI
/// policy): 0 for the whole 0.x series, as CMakeLists.txt
/// (VELTIX_SOVERSION) installs it. ELF: the SONAME libveltix.so.0. Apple:
/// the install name @rpath/libveltix.0.dylib, and libtool's version numbers
/// (the ABI version + 1: ld64 takes 0 for "none"). Windows DLLs carry no
/// such name: the ABI version is in the file names CMake installs.
fn link_args_for_the_abi_version() {
    let major: u32 = env::var("CARGO_PKG_VERSION_MAJOR")
        .expect("set by cargo")
        .parse()
        .expect("a number");
    let target_os = env::var("CARGO_CFG_TARGET_OS").expect("set by cargo");
    let target_vendor = env::var("CARGO_CFG_TARGET_VENDOR").unwrap_or_default();
    let link_arg = |arg: String| println!("cargo:rustc-cdylib-link-arg={arg}");
    if target_vendor == "apple" {
        let minor = env::var("CARGO_PKG_VERSION_MINOR").expect("set by cargo");
        let patch = env::var("CARGO_PKG_VERSION_PATCH").expect("set by cargo");
        let compatibility = major + 1;
        link_arg(format!("-Wl,-install_name,@rpath/libveltix.{major}.dylib"));
        link_arg(format!("-Wl,-compatibility_version,{compatibility}.0.0"));
        link_arg(format!(
            "-Wl,-current_version,{compatibility}.{minor}.{patch}"
        ));
    } else if target_os != "windows" {
        link_arg(format!("-Wl,-soname,libveltix.so.{major}"));
    }
}

/// Makes cbindgen's output clean under `-std=c89 -pedantic-errors`: its
/// `// __cplusplus` comments become C comments, and negative constants are
/// parenthesized (`#define VELTIX_ERR_IO (-11)`, so `x-VELTIX_ERR_IO`
/// stays an expression).
fn strict_c89(header: &str) -> String {
    header
        .lines()
        .map(|line| {
            if let Some(code) = line.strip_suffix("// __cplusplus") {
                return format!("{code}/* __cplusplus */");
            }
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("#define"), Some(name), Some(value))
                    if value.starts_with('-') && value[1..].bytes().all(|b| b.is_ascii_digit()) =>
                {
                    format!("#define {name} ({value})")
                }
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
