//! Signatures: what flows along an edge of the pipeline graph (role and per-sample shape).

use std::fmt;

/// What a value means; validation checks that each input gets the role it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Input images (or vectors) from the data source.
    Image,
    /// Ground-truth labels: one per sample, or one per pixel for segmentation.
    Label,
    /// Latent features `z` of a backbone.
    Features,
    /// Class scores (raw or adjusted logits).
    Logits,
    /// Outputs of `count` prior estimation modules, each with the logits' shape.
    Pem {
        /// Number of PEMs (M).
        count: usize,
    },
    /// A scalar training loss.
    Loss,
    /// An evaluation report (metrics computed on the host).
    Report,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Image => write!(f, "image"),
            Role::Label => write!(f, "label"),
            Role::Features => write!(f, "features"),
            Role::Logits => write!(f, "logits"),
            Role::Pem { count } => write!(f, "pem×{count}"),
            Role::Loss => write!(f, "loss"),
            Role::Report => write!(f, "report"),
        }
    }
}

/// A value's role and per-sample shape: `[channels]` for vectors, `[channels, h, w]` for maps.
/// The batch dimension is implicit; dense (segmentation) outputs are maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sig {
    /// Role of the value.
    pub role: Role,
    /// Channels (features, classes, or image channels).
    pub channels: usize,
    /// Spatial size for maps; `None` for vectors.
    pub spatial: Option<[usize; 2]>,
}

impl Sig {
    /// A vector value `[channels]`.
    pub fn vector(role: Role, channels: usize) -> Self {
        Self { role, channels, spatial: None }
    }

    /// A map value `[channels, h, w]`.
    pub fn map(role: Role, channels: usize, h: usize, w: usize) -> Self {
        Self { role, channels, spatial: Some([h, w]) }
    }

    /// A scalar (losses, reports).
    pub fn scalar(role: Role) -> Self {
        Self { role, channels: 1, spatial: None }
    }

    /// True for `[channels, h, w]` values.
    pub fn is_map(&self) -> bool {
        self.spatial.is_some()
    }

    /// Number of values per sample (`channels × h × w`).
    pub fn numel(&self) -> usize {
        self.channels * self.spatial.map_or(1, |[h, w]| h * w)
    }

    /// Same shape, other role.
    pub fn with_role(self, role: Role) -> Self {
        Self { role, ..self }
    }

    /// The per-sample shape as a list of dims.
    pub fn dims(&self) -> Vec<usize> {
        match self.spatial {
            Some([h, w]) => vec![self.channels, h, w],
            None => vec![self.channels],
        }
    }
}

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.role, self.spatial) {
            (Role::Loss | Role::Report, _) => write!(f, "{}", self.role),
            (Role::Pem { count }, Some([h, w])) => {
                write!(f, "pem [{count}, N, {}, {h}, {w}]", self.channels)
            }
            (Role::Pem { count }, None) => write!(f, "pem [{count}, N, {}]", self.channels),
            (role, Some([h, w])) => write!(f, "{role} [N, {}, {h}, {w}]", self.channels),
            (role, None) => write!(f, "{role} [N, {}]", self.channels),
        }
    }
}
