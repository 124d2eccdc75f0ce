//! A run's outcome: the results document and its summary (`results.rs`), the honest-ending notes,
//! thresholds and the verdict, the per-second series, the headline figures read back by
//! `compare` and `report`, histograms encoded for results files, and writing files in place.

pub mod endings;
pub mod generator;
pub mod headline;
pub mod histcodec;
pub mod outfile;
pub mod results;
pub mod series;
pub mod start;
pub mod thresholds;
