//! `source: cifar10` and `source: cifar100` (fine labels): the binary (`data_batch_1.bin` …,
//! `train.bin`) or python (pickled `data_batch_1` …, `train`) release, read by
//! [`crate::data::cifar`].

use crate::data::cifar::{self, Cifar};
use crate::data::dataset::{Pixels, Provenance, Split};
use crate::data::error::{DataError, Result};
use crate::data::source::{ClassSplits, Loaded, Located, Native, NoOptions, SourceDef};
use crate::spec::{DataFormat, DataSpec};
use std::path::{Path, PathBuf};

const HINT: &str = "download the binary or python release from https://www.cs.toronto.edu/~kriz/cifar.html and pass `--set data.root=PATH` (or set NPE_DATA__ROOT)";

fn no_root(name: &str) -> DataError {
    DataError::NoRoot { source_name: name.into(), hint: HINT.into() }
}

fn load(which: Cifar, spec: &DataSpec, root: &Path) -> Result<Loaded> {
    let d = cifar::load(root, which, spec.format)?;
    let fmt = if d.format == DataFormat::Binary { "binary" } else { "python" };
    Ok(Loaded::Classes(ClassSplits {
        name: format!("CIFAR-{}", which.classes()),
        origin: format!("{} ({fmt} release)", d.dir.display()),
        provenance: Provenance::Real,
        classes: d.names,
        train: Split::new(Pixels::Dense(d.train.images), d.train.labels, None),
        test: Split::new(Pixels::Dense(d.test.images), d.test.labels, None),
        channels: 3,
    }))
}

/// CIFAR-10.
pub struct Cifar10;

impl SourceDef for Cifar10 {
    const NAME: &'static str = "cifar10";
    const SUMMARY: &'static str = "CIFAR-10, binary (data_batch_1.bin …) or python (data_batch_1 …) release";
    const NORMALIZATION: (&'static [f32], &'static [f32]) = (&[0.4914, 0.4822, 0.4465], &[0.2023, 0.1994, 0.2010]);
    type Options = NoOptions;

    fn native(_: &NoOptions, _: &DataSpec) -> std::result::Result<Native, Located> {
        Ok(Native { channels: 3, size: Some([32, 32]), classes: Some(10) })
    }
    fn default_root(_: &NoOptions, _: &DataSpec) -> Result<PathBuf> {
        Err(no_root(Self::NAME))
    }
    fn load(_: &NoOptions, spec: &DataSpec, root: &Path, _seed: u64) -> Result<Loaded> {
        load(Cifar::Ten, spec, root)
    }
}

/// CIFAR-100 (fine labels).
pub struct Cifar100;

impl SourceDef for Cifar100 {
    const NAME: &'static str = "cifar100";
    const SUMMARY: &'static str = "CIFAR-100 (fine labels), binary (train.bin) or python (train) release";
    const NORMALIZATION: (&'static [f32], &'static [f32]) = (&[0.5071, 0.4865, 0.4409], &[0.2673, 0.2564, 0.2762]);
    type Options = NoOptions;

    fn native(_: &NoOptions, _: &DataSpec) -> std::result::Result<Native, Located> {
        Ok(Native { channels: 3, size: Some([32, 32]), classes: Some(100) })
    }
    fn default_root(_: &NoOptions, _: &DataSpec) -> Result<PathBuf> {
        Err(no_root(Self::NAME))
    }
    fn load(_: &NoOptions, spec: &DataSpec, root: &Path, _seed: u64) -> Result<Loaded> {
        load(Cifar::Hundred, spec, root)
    }
}
