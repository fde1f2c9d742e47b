//! With the `tch` feature, embed libtorch's library folders as an rpath, so the `npe` binary and
//! the tests run without LD_LIBRARY_PATH (scripts/libtorch.sh sets LIBTORCH for the build).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    for dir in libtorch_dirs() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}

fn libtorch_dirs() -> Vec<String> {
    let Some(torch) = std::env::var_os("LIBTORCH").map(std::path::PathBuf::from) else {
        return vec![];
    };
    let mut dirs = vec![torch.join("lib")];
    // The CUDA runtime wheels sit beside torch in site-packages: nvidia/<pkg>/lib.
    if let Some(site) = torch.parent() {
        if let Ok(rd) = std::fs::read_dir(site.join("nvidia")) {
            dirs.extend(rd.filter_map(|e| e.ok()).map(|e| e.path().join("lib")).filter(|p| p.is_dir()));
        }
    }
    dirs.into_iter().map(|d| d.display().to_string()).collect()
}
