//! Which `__consumer_offsets` partition owns a group: Kafka's
//! `Utils.abs(groupId.hashCode) % numPartitions`.

/// Java's `String.hashCode` over the UTF-16 code units of `s`.
pub fn java_string_hashcode(s: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    h
}

/// Kafka's `Utils.abs`: `i & 0x7fffffff` (so `i32::MIN` maps to 0).
pub fn kafka_abs(i: i32) -> i32 {
    i & 0x7fff_ffff
}

/// The offsets partition of `group_id` among `num_partitions`.
pub fn partition_for(group_id: &str, num_partitions: i32) -> i32 {
    kafka_abs(java_string_hashcode(group_id)) % num_partitions.max(1)
}
