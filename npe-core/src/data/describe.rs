//! What a data section implies for the graph, known without reading any file: class count,
//! image shape after transforms, label shape.

use super::source::Native;
use crate::spec::DataSpec;
use crate::types::{Role, Sig};

/// The data source's outputs as the graph sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSig {
    /// Number of classes (segmentation: including background).
    pub num_classes: usize,
    /// `data.image`: [channels, h, w].
    pub image: Sig,
    /// `data.label`: a vector of 1 per sample, or an [1, h, w] map for segmentation.
    pub label: Sig,
}

impl DataSig {
    /// True when labels are per pixel.
    pub fn is_dense(&self) -> bool {
        self.label.is_map()
    }
}

/// Most classes a pipeline may have (ImageNet-21k has 21,841; iNaturalist 2018 8,142).
pub const MAX_CLASSES: usize = 1_000_000;

fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / (1u64 << 30) as f64)
}

/// Describe the data a spec will produce. Errors are `(spec path, message)`.
pub fn describe(spec: &DataSpec) -> Result<DataSig, (String, String)> {
    let source = super::source::of(spec)?;
    let Native { channels, size: native_size, classes } = source.native(spec)?;
    let classes = class_count(spec, classes)?;
    crate::spec::ranges::data(spec)?;
    let [h, w] = input_size(spec, native_size)?;
    if let Some(n) = &spec.normalize {
        if n.mean.len() != channels || n.std.len() != channels {
            return Err((
                "data.normalize".into(),
                format!(
                    "{channels}-channel images need {channels} means and stds, got {} and {}",
                    n.mean.len(),
                    n.std.len()
                ),
            ));
        }
    }
    source.check(spec, classes)?;
    let image = Sig::map(Role::Image, channels, h, w);
    let label = if source.segmentation() { Sig::map(Role::Label, 1, h, w) } else { Sig::vector(Role::Label, 1) };
    Ok(DataSig { num_classes: classes, image, label })
}

/// The data's class count, checked against `num_classes` and npe's bounds.
fn class_count(spec: &DataSpec, classes: Option<usize>) -> Result<usize, (String, String)> {
    let classes = classes.unwrap_or(0);
    if let Some(n) = spec.num_classes {
        if n != classes {
            return Err((
                "data.num_classes".into(),
                format!("`num_classes: {n}` but `{}` has {classes} classes", spec.source),
            ));
        }
    }
    if classes < 2 {
        return Err(("data".into(), format!("need at least 2 classes, the data has {classes}")));
    }
    // Checked here so that a typo is an error before anything allocates (4e9 classes aborted).
    if classes > MAX_CLASSES {
        let path = if spec.source == "synthetic" { "data.synthetic.classes" } else { "data.num_classes" };
        return Err((
            path.into(),
            format!(
                "{classes} classes is more than npe supports ({MAX_CLASSES}): per-class counts and metrics alone would take {}",
                gib(classes as f64 * 8.0 * 8.0)
            ),
        ));
    }
    Ok(classes)
}

/// The input size after resize → centre crop → random crop of `native` images.
fn input_size(spec: &DataSpec, native: Option<[usize; 2]>) -> Result<[usize; 2], (String, String)> {
    let a = &spec.augment;
    // Size after resize → centre crop → random crop.
    let mut size = native;
    if let Some(r) = a.resize {
        size = match size {
            Some([h, w]) if h <= w => Some([r, (w * r).div_ceil(h).max(r)]),
            Some([h, w]) => Some([(h * r).div_ceil(w).max(r), r]),
            None => None,
        };
    }
    if let Some(c) = a.center_crop {
        if let Some([h, w]) = size {
            if c > h || c > w {
                return Err((
                    "data.augment.center_crop".into(),
                    format!("centre crop {c} is larger than the {h}×{w} images"),
                ));
            }
        }
        size = Some([c, c]);
    }
    if let Some(crop) = a.random_crop {
        if let Some([h, w]) = size {
            if crop.size > h + 2 * crop.padding || crop.size > w + 2 * crop.padding {
                return Err((
                    "data.augment.random_crop".into(),
                    format!(
                        "crop {} is larger than the padded {}×{} images",
                        crop.size,
                        h + 2 * crop.padding,
                        w + 2 * crop.padding
                    ),
                ));
            }
        }
        size = Some([crop.size, crop.size]);
    }
    let Some([h, w]) = size else {
        return Err((
            "data.augment".into(),
            format!(
                "the size of `{}` images is only known once they are read, and the pipeline is checked before: \
                 set `augment.center_crop` (or `random_crop`, after `resize` if they vary) to fix the input size",
                spec.source
            ),
        ));
    };
    if h == 0 || w == 0 {
        return Err(("data.augment".into(), "image size must be > 0".into()));
    }
    Ok([h, w])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> DataSpec {
        DataSpec::from_yaml(yaml).unwrap()
    }

    #[test]
    fn cifar_with_crop_is_3x32x32() {
        let d =
            describe(&spec("{source: cifar10, augment: {random_crop: {size: 32, padding: 4}, hflip: true}}")).unwrap();
        assert_eq!((d.num_classes, d.image.dims()), (10, vec![3, 32, 32]));
        assert!(!d.is_dense());
    }

    #[test]
    fn folder_needs_class_count_and_fixed_size() {
        assert!(describe(&spec("{source: image_folder}")).unwrap_err().1.contains("num_classes"));
        let e = describe(&spec("{source: image_folder, num_classes: 3}")).unwrap_err().1;
        assert!(e.contains("center_crop") && e.contains("only known once they are read"), "{e}");
        assert!(!e.contains("vary in size"), "the images were not read, so nothing says they vary: {e}");
        let d =
            describe(&spec("{source: image_folder, num_classes: 3, augment: {resize: 40, center_crop: 32}}")).unwrap();
        assert_eq!(d.image.dims(), vec![3, 32, 32]);
    }

    #[test]
    fn class_count_mismatch_is_reported() {
        let e = describe(&spec("{source: cifar100, num_classes: 10}")).unwrap_err();
        assert_eq!(e.0, "data.num_classes");
    }

    #[test]
    fn segmentation_labels_are_maps() {
        let d = describe(&spec("{source: seg_digits, seg_digits: {canvas: 48}}")).unwrap();
        assert_eq!(d.label.dims(), vec![1, 48, 48]);
        assert_eq!(d.num_classes, 11);
    }
}
