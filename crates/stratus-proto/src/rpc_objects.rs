//! Typed requests for the objects an agent reads and writes for its
//! instances: volume archives, a task's input and its output files.
//!
//! Reads ([`ReadPart`]) and listings ([`ListInput`]) are plain [`Rpc`]s.
//! An upload is a sequence of steps ([`VolumePut`]) whose answer depends on
//! the step, so each step is its own type ([`Begin`], [`Part`],
//! [`Complete`], [`Abort`]) and [`Upload`] of a step names that step's
//! reply. On the wire these are the [`Request::PutVolume`],
//! [`Request::PutOutput`], [`Request::GetVolume`], [`Request::GetInput`]
//! and [`Request::ListInput`] variants, unchanged.

// As in `rpc`: a response of another kind is handed back by value.
#![allow(clippy::result_large_err)]

use crate::rpc::Rpc;
use crate::{ListedObject, Request, Response, VolumeAnswer, VolumePut};

/// An object of a workload's tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectAt {
    /// Owner of the workload.
    pub tenant: String,
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
}

/// What an object read or written is for (each has its own authorization
/// on the replica).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectUse {
    /// A volume's archive ([`Request::GetVolume`], [`Request::PutVolume`]).
    Volume,
    /// A task's input ([`Request::GetInput`]) or output
    /// ([`Request::PutOutput`]) object.
    TaskIo,
}

/// Part of an object's bytes.
#[derive(Clone, Debug)]
pub struct ReadPart {
    /// Volume or task input.
    pub of: ObjectUse,
    /// The object.
    pub at: ObjectAt,
    /// The version to read (`None`: the latest).
    pub version: Option<String>,
    /// First byte wanted.
    pub offset: u64,
    /// Bytes wanted.
    pub len: u64,
}

/// The answer to a [`ReadPart`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartData {
    /// The version read (`None`: no such object).
    pub version: Option<String>,
    /// Size of the whole object.
    pub size: u64,
    /// The bytes from the asked offset.
    pub data: Vec<u8>,
}

impl Rpc for ReadPart {
    type Reply = PartData;
    const NAME: &'static str = "GetVolume/GetInput";
    fn into_request(self) -> Request {
        let ObjectAt {
            tenant,
            bucket,
            key,
        } = self.at;
        let (version, offset, len) = (self.version, self.offset, self.len);
        match self.of {
            ObjectUse::Volume => Request::GetVolume {
                tenant,
                bucket,
                key,
                version,
                offset,
                len,
            },
            ObjectUse::TaskIo => Request::GetInput {
                tenant,
                bucket,
                key,
                version,
                offset,
                len,
            },
        }
    }
    fn reply(r: Response) -> Result<PartData, Response> {
        match r {
            Response::VolumeData {
                version,
                size,
                data,
            } => Ok(PartData {
                version,
                size,
                data,
            }),
            other => Err(other),
        }
    }
}

/// [`Request::ListInput`]: a page of a task's input objects.
#[derive(Clone, Debug)]
pub struct ListInput {
    /// Owner of the workload.
    pub tenant: String,
    /// Bucket of the input.
    pub bucket: String,
    /// Key prefix.
    pub prefix: String,
    /// List keys after this one.
    pub after: Option<String>,
}

/// A page of objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectPage {
    /// Objects, in key order.
    pub objects: Vec<ListedObject>,
    /// More objects follow the last one.
    pub truncated: bool,
}

impl Rpc for ListInput {
    type Reply = ObjectPage;
    const NAME: &'static str = "ListInput";
    fn into_request(self) -> Request {
        Request::ListInput {
            tenant: self.tenant,
            bucket: self.bucket,
            prefix: self.prefix,
            after: self.after,
        }
    }
    fn reply(r: Response) -> Result<ObjectPage, Response> {
        match r {
            Response::ObjectList { objects, truncated } => Ok(ObjectPage { objects, truncated }),
            other => Err(other),
        }
    }
}

/// One step of an upload, typed by its answer.
pub trait UploadStep {
    /// What the answer to this step carries.
    type Reply;
    /// The step's name, for errors.
    const NAME: &'static str;
    /// The step as sent.
    fn into_step(self) -> VolumePut;
    /// The reply when `r` answers this step; `r` back when not.
    fn reply(r: Response) -> Result<Self::Reply, Response>;
}

/// Start an upload; answered with its id.
#[derive(Clone, Debug)]
pub struct Begin;

impl UploadStep for Begin {
    type Reply = String;
    const NAME: &'static str = "upload begin";
    fn into_step(self) -> VolumePut {
        VolumePut::Begin
    }
    fn reply(r: Response) -> Result<String, Response> {
        match r {
            Response::Volume(VolumeAnswer::Upload(id)) => Ok(id),
            other => Err(other),
        }
    }
}

/// Store one part; answered with its hex MD5.
#[derive(Clone, Debug)]
pub struct Part {
    /// Upload id.
    pub upload: String,
    /// Part number (1, 2, ...).
    pub number: u32,
    /// The bytes.
    pub data: Vec<u8>,
}

impl UploadStep for Part {
    type Reply = String;
    const NAME: &'static str = "upload part";
    fn into_step(self) -> VolumePut {
        VolumePut::Part {
            upload: self.upload,
            number: self.number,
            data: self.data,
        }
    }
    fn reply(r: Response) -> Result<String, Response> {
        match r {
            Response::Volume(VolumeAnswer::Part(md5)) => Ok(md5),
            other => Err(other),
        }
    }
}

/// Commit the parts as the new version; answered with the version.
#[derive(Clone, Debug)]
pub struct Complete {
    /// Upload id.
    pub upload: String,
    /// Part numbers with the MD5 each was answered with.
    pub parts: Vec<(u32, String)>,
}

impl UploadStep for Complete {
    type Reply = String;
    const NAME: &'static str = "upload complete";
    fn into_step(self) -> VolumePut {
        VolumePut::Complete {
            upload: self.upload,
            parts: self.parts,
        }
    }
    fn reply(r: Response) -> Result<String, Response> {
        match r {
            Response::Volume(VolumeAnswer::Saved(v)) => Ok(v),
            other => Err(other),
        }
    }
}

/// Give the upload up.
#[derive(Clone, Debug)]
pub struct Abort {
    /// Upload id.
    pub upload: String,
}

impl UploadStep for Abort {
    type Reply = ();
    const NAME: &'static str = "upload abort";
    fn into_step(self) -> VolumePut {
        VolumePut::Abort {
            upload: self.upload,
        }
    }
    fn reply(r: Response) -> Result<(), Response> {
        match r {
            Response::Ok => Ok(()),
            other => Err(other),
        }
    }
}

/// One step `S` of storing an object: a volume's archive
/// ([`Request::PutVolume`]) or a task's output file ([`Request::PutOutput`]).
#[derive(Clone, Debug)]
pub struct Upload<S> {
    /// Volume or task output.
    pub of: ObjectUse,
    /// The object.
    pub at: ObjectAt,
    /// The step.
    pub step: S,
}

impl<S: UploadStep> Rpc for Upload<S> {
    type Reply = S::Reply;
    const NAME: &'static str = S::NAME;
    fn into_request(self) -> Request {
        let ObjectAt {
            tenant,
            bucket,
            key,
        } = self.at;
        let step = self.step.into_step();
        match self.of {
            ObjectUse::Volume => Request::PutVolume {
                tenant,
                bucket,
                key,
                step,
            },
            ObjectUse::TaskIo => Request::PutOutput {
                tenant,
                bucket,
                key,
                step,
            },
        }
    }
    fn reply(r: Response) -> Result<S::Reply, Response> {
        S::reply(r)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rpc::{decode, RpcError};

    fn at() -> ObjectAt {
        ObjectAt {
            tenant: "t".into(),
            bucket: "b".into(),
            key: "k".into(),
        }
    }

    #[test]
    fn each_use_sends_its_own_request() {
        let up = |of| Upload {
            of,
            at: at(),
            step: Begin,
        };
        assert!(matches!(
            up(ObjectUse::Volume).into_request(),
            Request::PutVolume {
                step: VolumePut::Begin,
                ..
            }
        ));
        assert!(matches!(
            up(ObjectUse::TaskIo).into_request(),
            Request::PutOutput {
                step: VolumePut::Begin,
                ..
            }
        ));
        let read = |of| ReadPart {
            of,
            at: at(),
            version: None,
            offset: 3,
            len: 4,
        };
        assert!(matches!(
            read(ObjectUse::Volume).into_request(),
            Request::GetVolume {
                offset: 3,
                len: 4,
                ..
            }
        ));
        assert!(matches!(
            read(ObjectUse::TaskIo).into_request(),
            Request::GetInput {
                offset: 3,
                len: 4,
                ..
            }
        ));
    }

    #[test]
    fn a_step_takes_only_its_own_answer() {
        let part = || Response::Volume(VolumeAnswer::Part("md5".into()));
        assert_eq!(decode::<Upload<Part>>(part()).unwrap(), "md5");
        // A part's answer to a begin (a confused or lying replica) is refused,
        // never taken for an upload id.
        assert_eq!(
            decode::<Upload<Begin>>(part()).unwrap_err(),
            RpcError::WrongReply {
                request: "upload begin",
                got: "Volume"
            }
        );
        assert!(decode::<Upload<Abort>>(Response::Ok).is_ok());
        assert!(decode::<Upload<Complete>>(Response::Ok).is_err());
        assert!(decode::<ListInput>(Response::Ok).is_err());
    }
}
