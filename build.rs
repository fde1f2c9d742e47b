//! With the `tch` feature, embed libtorch's library folders as an rpath, so the `npe` binary and
//! the tests run without LD_LIBRARY_PATH. npe-backend-tch's build script finds the folders (from
//! LIBTORCH, which scripts/libtorch.sh sets) and hands them on as `DEP_NPE_TCH_RPATH`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_NPE_TCH_RPATH");
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    let dirs = std::env::var("DEP_NPE_TCH_RPATH").unwrap_or_default();
    for dir in dirs.split(':').filter(|d| !d.is_empty()) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
