//! The large-scale recipes (ImageNet-LT, iNaturalist 2018, Places-LT: list files, torchvision
//! ResNets) train end to end on small generated list-file data sets on every backend.

mod common;
use common::{npe, run};
use std::path::Path;

/// `root/{train,test}/cN/i.png` (16×16) and the two list files.
fn make_list_data(root: &Path, train_list: &str, test_list: &str) {
    for (split, list, per_class) in [("train", train_list, [6, 3, 2]), ("test", test_list, [2, 2, 2])] {
        let mut lines = String::new();
        for (c, n) in per_class.iter().enumerate() {
            for i in 0..*n {
                let rel = format!("{split}/c{c}/{i}.png");
                let p = root.join(&rel);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([(60 * c) as u8, (x * 8) as u8, (y * 8 + i) as u8]))
                    .save(&p)
                    .unwrap();
                lines.push_str(&format!("{rel} {c}\n"));
            }
        }
        std::fs::write(root.join(list), lines).unwrap();
    }
}

#[test]
fn the_list_file_recipes_train_end_to_end_on_generated_data() {
    for (pipeline, train, test) in [
        ("imagenet_lt", "ImageNet_LT_train.txt", "ImageNet_LT_test.txt"),
        ("inat2018", "iNaturalist18_train.txt", "iNaturalist18_val.txt"),
        ("places_lt", "Places_LT_train.txt", "Places_LT_test.txt"),
    ] {
        let data = tempfile::tempdir().unwrap();
        make_list_data(data.path(), train, test);
        for backend in common::backends() {
            let out = tempfile::tempdir().unwrap();
            let (code, _, err) = run(npe()
                .args([
                    "train",
                    &format!("pipelines/{pipeline}.yaml"),
                    "--progress",
                    "quiet",
                    "--backend",
                    backend.name(),
                ])
                .args(["--set", &format!("data.root={}", data.path().display())])
                .args(["--set", "data.num_classes=3", "--set", "data.augment:={resize: 16, center_crop: 16}"])
                .args(["--set", "nodes.features.stem=small", "--set", "train.epochs=1", "--set", "train.batch_size=4"])
                .args(["--set", "train.max_steps_per_epoch=2", "--set", "eval.batch_size=6", "--out"])
                .arg(out.path()));
            assert_eq!(code, 0, "{pipeline} on {}: {err}", backend.name());
            let summary: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).unwrap()).unwrap();
            assert_eq!(summary["data"]["train_images"], 11, "{summary}");
            assert_eq!(summary["eval"]["test_images"], 6, "{summary}");
        }
    }
}
