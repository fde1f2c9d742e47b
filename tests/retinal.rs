//! Retinal-vessel data in DRIVE's official layout, generated at DRIVE's size (20 + 20 images of
//! 565×584, LZW TIFFs, GIF labels and field-of-view masks): `npe data` reads it with the prior
//! counted inside the masks, the count-free calibrations average only inside the field of
//! view on every backend, and a short `npe train` reports the vessel metrics.

mod common;
use common::*;
use npe_core::Registry;
use npe_core::backend::{Device, Request};
use npe_core::train::Session;
use std::path::Path;

const W: u32 = 565;
const H: u32 = 584;

/// Inside the field of view: a disc of radius 250 around the centre.
fn inside(x: u32, y: u32) -> bool {
    let (dx, dy) = (x as f64 - 282.0, y as f64 - 291.0);
    dx * dx + dy * dy <= 250.0 * 250.0
}

/// A vessel: every 16th column, inside the disc and (as a mistake the masks must hide) outside.
fn vessel(x: u32, _y: u32) -> bool {
    x % 16 == 0
}

fn write_gif(path: &Path, f: impl Fn(u32, u32) -> bool) {
    let mut file = std::fs::File::create(path).unwrap();
    let mut enc = gif::Encoder::new(&mut file, W as u16, H as u16, &[0, 0, 0, 255, 255, 255]).unwrap();
    let pixels: Vec<u8> = (0..W * H).map(|p| f(p % W, p / W) as u8).collect();
    enc.write_frame(&gif::Frame::from_indexed_pixels(W as u16, H as u16, pixels, None)).unwrap();
}

fn write_drive(root: &Path) {
    for (split, first) in [("training", 21), ("test", 1)] {
        for d in ["images", "1st_manual", "mask"] {
            std::fs::create_dir_all(root.join(split).join(d)).unwrap();
        }
        for i in first..first + 20 {
            let px: Vec<u8> = (0..W * H)
                .flat_map(|p| {
                    let (x, y) = (p % W, p / W);
                    if !inside(x, y) {
                        [0, 0, 0]
                    } else if vessel(x, y) {
                        [90, 30, 10]
                    } else {
                        [200, 100, (i * 3) as u8]
                    }
                })
                .collect();
            let f = std::fs::File::create(root.join(format!("{split}/images/{i:02}_{split}.tif"))).unwrap();
            let mut enc = tiff::encoder::TiffEncoder::new(f).unwrap().with_compression(tiff::encoder::Compression::Lzw);
            enc.write_image::<tiff::encoder::colortype::RGB8>(W, H, &px).unwrap();
            write_gif(&root.join(format!("{split}/1st_manual/{i:02}_manual1.gif")), vessel);
            write_gif(&root.join(format!("{split}/mask/{i:02}_{split}_mask.gif")), inside);
        }
    }
}

#[test]
fn npe_data_reads_the_drive_layout_with_the_prior_inside_the_masks() {
    let d = tempfile::tempdir().unwrap();
    write_drive(d.path());
    let root = format!("data.root={}", d.path().display());
    let (code, out, err) = run(npe().args(["data", "pipelines/drive.yaml", "--json", "--set", &root]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["train_images"].as_u64(), v["test_images"].as_u64()), (Some(20), Some(20)), "{v}");
    let (mut fov, mut vessels) = (0u64, 0u64);
    for y in 0..H {
        for x in 0..W {
            fov += inside(x, y) as u64;
            vessels += (inside(x, y) && vessel(x, y)) as u64;
        }
    }
    assert_eq!(v["train_counts"], serde_json::json!([20 * (fov - vessels), 20 * vessels]), "{v}");
    assert!(v["dataset"].as_str().unwrap().contains("inside the FOV masks"), "{v}");
    // Given as a STARE root, the folder is recognised.
    let (code, _, err) = run(npe().args(["data", "pipelines/stare.yaml", "--set", &root]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("looks like a DRIVE folder"), "{err}");
}

#[test]
fn calibrations_average_inside_the_field_of_view_and_a_short_run_reports_vessel_metrics() {
    let d = tempfile::tempdir().unwrap();
    write_drive(d.path());
    let root = format!("data.root={}", d.path().display());
    let small = [
        root.as_str(),
        "data.augment.resize=32",
        "data.augment.center_crop=32",
        "nodes.features.channels=[4, 8]",
        "train.epochs=1",
        "train.batch_size=4",
        "eval.every_epochs=1",
        "eval.batch_size=4",
    ];
    for backend in backends() {
        let ir = ir_of_file("pipelines/drive.yaml", &small);
        let mut s = Session::new(ir, &Registry::builtin(), backend.as_ref(), Device::Cpu).unwrap();
        let batch = s.train_loader().batch(0, 0).unwrap();
        let region = batch.region.clone().expect("a DRIVE batch carries its field of view");
        let n_inside: f32 = region.iter().sum();
        let all = (batch.len() * 32 * 32) as f32;
        assert!(n_inside > 0.3 * all && n_inside < 0.9 * all, "{n_inside} of {all}");
        let req = [Request::ClassSums { values: Some("prior".into()), weights: Some("logits".into()) }];
        let counted = |b: &npe_core::batch::HostBatch, s: &mut Session| s.exec.infer(b, &req).unwrap()[0].data.clone();
        let with = counted(&batch, &mut s);
        let mut whole = batch.clone();
        whole.region = None;
        let without = counted(&whole, &mut s);
        // Rows: Σ w·h̄, Σ w, pixels counted; per class.
        assert_eq!(&with[4..6], &[n_inside, n_inside], "{}: pixels counted inside", backend.name());
        assert_eq!(&without[4..6], &[all, all]);
        assert!((with[2] + with[3] - n_inside).abs() < 1e-2 * n_inside, "softmax weights sum to the pixels inside");
    }
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["train".to_string(), "pipelines/drive.yaml".into(), "--progress".into(), "quiet".into()];
    args.extend(["--out".into(), out.path().display().to_string()]);
    for s in small.iter().chain(&[
        "nodes.predicted:={kind: posthoc_la, input: logits, prior: predicted}",
        "nodes.iou.inputs:=[logits, npe, posthoc, predicted]",
    ]) {
        args.extend(["--set".into(), s.to_string()]);
    }
    let (code, stdout, err) = run(npe().args(&args));
    assert_eq!(code, 0, "{stdout}\n{err}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
    let predicted = &summary["eval"]["segmentation"]["iou"]["predicted"];
    for k in ["dice", "sensitivity", "specificity", "accuracy", "auc"] {
        let x = predicted["binary"][k].as_f64().unwrap_or_else(|| panic!("no vessel {k}: {predicted}"));
        assert!((0.0..=1.0).contains(&x), "{k} = {x}");
    }
}

#[test]
fn predicted_label_maps_have_npe_evals_pixel_accuracy() {
    let d = tempfile::tempdir().unwrap();
    write_drive(d.path());
    let root = format!("data.root={}", d.path().display());
    let sets: Vec<String> = [
        root.as_str(),
        "data.augment.resize=32",
        "data.augment.center_crop=32",
        "nodes.features.channels=[4, 8]",
        "train.epochs=2",
        "train.batch_size=4",
    ]
    .iter()
    .flat_map(|s| ["--set".to_string(), s.to_string()])
    .collect();
    let run_dir = tempfile::tempdir().unwrap();
    let out = run_dir.path().join("run");
    let (code, _, err) =
        run(npe().args(["train", "pipelines/drive.yaml", "--progress", "quiet", "--out"]).arg(&out).args(&sets));
    assert_eq!(code, 0, "{err}");
    let mut eval = npe();
    eval.args(["eval", "pipelines/drive.yaml", "--json", "--checkpoint"])
        .arg(out.join("model.safetensors"))
        .args(&sets);
    let (code, stdout, err) = run(&mut eval);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let maps = run_dir.path().join("maps");
    let (code, _, err) =
        run(npe().arg("predict").arg(&out).arg(d.path().join("test/images")).arg("--output").arg(&maps));
    assert_eq!(code, 0, "{err}");
    assert!(maps.join("01_test.npe.overlay.png").is_file() && maps.join("fractions.jsonl").is_file());
    // The test labels as evaluation sees them (resized, cropped, outside the FOV ignored).
    let ir =
        ir_of_file("pipelines/drive.yaml", &[root.as_str(), "data.augment.resize=32", "data.augment.center_crop=32"]);
    let ds = npe_core::data::load(&ir.data_spec, ir.seed).unwrap();
    let loader =
        npe_core::data::loader(&ds, &ds.test, &ir.data_spec, npe_core::data::SplitKind::Eval, 20, false, 0).unwrap();
    let labels = loader.batch(0, 0).unwrap().labels;
    for output in ["logits", "npe", "posthoc"] {
        let (mut right, mut counted) = (0usize, 0usize);
        for i in 0..20 {
            let map =
                image::open(maps.join(format!("{:02}_test.{output}.png", i + 1))).unwrap().into_luma8().into_raw();
            for (p, &l) in map.iter().zip(&labels[i * 1024..(i + 1) * 1024]) {
                if l != 255 {
                    counted += 1;
                    right += (*p as i64 == l) as usize;
                }
            }
        }
        let eval_acc = report["segmentation"]["iou"][output]["pixel_accuracy"].as_f64().unwrap();
        assert!(
            (right as f64 / counted as f64 - eval_acc).abs() < 1e-9,
            "{output}: maps {right}/{counted} vs npe eval {eval_acc}"
        );
    }
}
