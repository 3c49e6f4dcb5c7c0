//! Metadata images for unit tests, built by applying commands in log order as the quorum
//! would (so broker epochs and partition epochs come out as in a running cluster).

use klamm_raft::{MetadataCommand, MetadataImage};

/// Applies `cmd` as the next log entry; panics when the image rejects it.
pub(crate) fn must_apply(img: &mut MetadataImage, cmd: &MetadataCommand) {
    let index = img.last_applied_index + 1;
    assert!(img.apply(index, cmd).is_applied(), "{cmd:?}");
}

/// An image with brokers `ids` registered (no endpoints, no rack) and unfenced, in that order.
pub(crate) fn must_image_with_brokers(ids: impl IntoIterator<Item = i32>) -> MetadataImage {
    let mut img = MetadataImage::default();
    for id in ids {
        must_apply(&mut img, &MetadataCommand::RegisterBroker { node_id: id, incarnation_id: [id as u8; 16], endpoints: vec![], rack: None });
        let epoch = img.broker(id).map(|b| b.epoch).expect("just registered");
        must_apply(&mut img, &MetadataCommand::UnfenceBroker { node_id: id, epoch });
    }
    img
}
