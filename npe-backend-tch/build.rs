//! Compile the C++ shim (`csrc/`: autocast, channels-last and c10d's process groups, which tch
//! does not bind) against the same libtorch as torch-sys, and embed libtorch's library folders
//! as an rpath, so this crate's tests and examples run without LD_LIBRARY_PATH
//! (scripts/libtorch.sh sets LIBTORCH for the build). The folders are also handed on to
//! dependents as `DEP_NPE_TCH_RPATH` (the `npe` binary's build script embeds them).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=csrc");
    let dirs = libtorch_dirs();
    for dir in &dirs {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    // For the crates that depend on this one (the `npe` binary's build.rs): DEP_NPE_TCH_RPATH.
    println!("cargo:rpath={}", dirs.join(":"));
    let Some(torch) = std::env::var_os("LIBTORCH").map(std::path::PathBuf::from) else {
        panic!("LIBTORCH is not set: run `eval \"$(scripts/libtorch.sh)\"` first (it installs libtorch 2.13.0)");
    };
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let mut build = cc::Build::new();
    // NCCL for data-parallel training on GPUs: a `cuda` build against a CUDA libtorch (the
    // full torch wheel, whose NVIDIA packages ship the NCCL and most CUDA headers).
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() && torch.join("lib/libtorch_cuda.so").exists() {
        let dirs = cuda_include_dirs(&torch);
        let missing: Vec<&str> = ["nccl.h", "cuda_runtime_api.h", "crt/host_config.h", "nv/target"]
            .into_iter()
            .filter(|h| !dirs.iter().any(|d| d.join(h).exists()))
            .collect();
        if missing.is_empty() {
            build.define("USE_C10D_NCCL", None).define("USE_CUDA", None).define("NPE_WITH_NCCL", None);
            for dir in dirs {
                build.include(dir);
            }
        } else {
            println!(
                "cargo:warning=NCCL is not compiled in (data-parallel training on GPUs): no {} among the CUDA headers; install the full torch wheel (NPE_TORCH_FULL=1 scripts/libtorch.sh) and a CUDA toolkit or the nvidia-cuda-crt and nvidia-cuda-cccl wheels (scripts/gpu-check.sh does)",
                missing.join(", ")
            );
        }
    }
    build
        .cpp(true)
        .file("csrc/shim.cpp")
        .file("csrc/dist.cpp")
        // The wheel ships c10d's headers but not Gloo's, which ProcessGroupGloo.hpp includes.
        .include("csrc/third_party/gloo")
        .define("USE_C10D_GLOO", None)
        .include(torch.join("include"))
        .include(torch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag_if_supported("-Wno-unused-parameter")
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .warnings(false)
        .compile("npe_tch_shim");
}

/// CUDA and NCCL headers: the NVIDIA wheels beside torch (`nvidia/*/include`), then a CUDA
/// toolkit (`CUDA_HOME`, /usr/local/cuda) for what the wheels lack (crt/, nv/).
fn cuda_include_dirs(torch: &std::path::Path) -> Vec<std::path::PathBuf> {
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let mut dirs = vec![];
    if let Some(site) = torch.parent() {
        if let Ok(rd) = std::fs::read_dir(site.join("nvidia")) {
            dirs.extend(rd.filter_map(|e| e.ok()).map(|e| e.path().join("include")).filter(|p| p.is_dir()));
        }
    }
    let home = std::env::var_os("CUDA_HOME").map(std::path::PathBuf::from).unwrap_or_else(|| "/usr/local/cuda".into());
    dirs.push(home.join("include"));
    dirs.retain(|d| d.is_dir());
    dirs
}

/// libtorch's `lib/` and the CUDA runtime wheels' `lib/` folders beside it (site-packages).
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
