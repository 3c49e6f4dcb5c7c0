//! Record batch v2 view (filled in by the records work).
