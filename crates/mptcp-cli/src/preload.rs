//! The preload library embedded in this binary by `build.rs` (unless built
//! without the `embed-preload` feature), handed to [`mptcp_run`] as the last
//! place to find `libmptcp_preload.so` (see [`mptcp_run::preload`]).

use mptcp_run::preload::{Embedded, Library, Origin};
use serde::Serialize;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/preload.rs"));
}

/// The embedded library, if this build has one.
pub fn embedded() -> Option<Embedded> {
    generated::EMBEDDED.map(|(bytes, id)| Embedded { bytes, id })
}

/// Which library `mptcp run` would load, said without writing anything (for
/// `mptcp doctor`): `{"origin", "path"}`; `path` is left out for the embedded copy
/// not written yet; `error` when none can be used.
#[derive(Debug, Serialize)]
pub struct Which {
    #[serde(skip)]
    kind: Option<Origin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Which {
    pub fn find() -> Which {
        match mptcp_run::preload::find_on_disk() {
            Ok(Some(Library { path, origin })) => Which {
                kind: Some(origin),
                origin: Some(origin.name()),
                path: Some(path.display().to_string()),
                error: None,
            },
            Ok(None) if embedded().is_some() => Which {
                kind: Some(Origin::Embedded),
                origin: Some(Origin::Embedded.name()),
                path: None,
                error: None,
            },
            Ok(None) => Which {
                kind: None,
                origin: None,
                path: None,
                error: Some(
                    "none: no libmptcp_preload.so on disk and none embedded; mptcp run can \
                     only trace"
                        .into(),
                ),
            },
            Err(e) => Which {
                kind: None,
                origin: None,
                path: None,
                error: Some(e.to_string()),
            },
        }
    }

    /// One line: `PATH (ORIGIN)`.
    pub fn line(&self) -> String {
        match (&self.path, self.kind, &self.error) {
            (_, _, Some(e)) => e.clone(),
            (Some(path), Some(origin), _) => format!("{path} ({origin})"),
            _ => "the copy embedded in the mptcp binary (written to a private runtime \
                  directory when used)"
                .into(),
        }
    }
}
