//! Exact vector search over vectors held in memory. A table without an ANN index is read
//! once per table version, its vectors widened to single precision with the length of
//! each, so a query is one pass of dot products over the rows its access filter admits,
//! instead of a Lance scan that reads and decodes the table again for every query. Which
//! rows a filter admits is computed once per filter and table version, from the same
//! [`ChunkFilter::admits`] every lane's results are checked with.

use std::sync::Arc;

use futures::TryStreamExt;
use lance::Dataset;
use lancedb::arrow::arrow_array::{Array, RecordBatch, StringArray};

use super::super::ChunkFilter;
use super::super::arrow::{flat_vectors, string_column, vector_column};
use super::super::filter::PerFilterCache;
use crate::error::{Error, Result};

/// Tables up to this many rows are searched in memory (230 MB of 384-d vectors). Past the
/// size where a table gets its ANN index (20k rows by default) that happens only while its
/// vectors are still being computed, or when configured without one; a larger table keeps
/// Lance's scan, which streams it.
pub(super) const MAX_RESIDENT_ROWS: usize = 150_000;

/// One table version's vectors in memory, with the chunk id and file of every row.
pub(super) struct ResidentVectors {
    /// The table version they were read from.
    version: u64,
    dimension: usize,
    /// Every row's vector, `rows × dimension` floats in table order, in one buffer so
    /// that a query's pass reads it straight through.
    vectors: Vec<f32>,
    /// Every row's id and file, batch by batch, in table order.
    blocks: Vec<Block>,
    /// 1 / the length of each row's vector (0 for a zero vector).
    inverse_norms: Vec<f32>,
    /// By filter cache key: the rows the filter admits, ascending.
    admitted: PerFilterCache<String, Arc<Vec<u32>>>,
}

/// The ids and files of one record batch of the table: consecutive rows from `first_row` on.
struct Block {
    first_row: u32,
    ids: StringArray,
    repos: StringArray,
    paths: StringArray,
}

impl ResidentVectors {
    /// Reads every row's id, file and vector from `dataset`.
    pub(super) async fn load(dataset: &Dataset) -> Result<ResidentVectors> {
        let mut scan = dataset.scan();
        scan.project(&["chunk_id", "repo", "path", "vector"])
            .map_err(Error::store)?;
        let batches: Vec<RecordBatch> = scan
            .try_into_stream()
            .await
            .map_err(Error::store)?
            .try_collect()
            .await
            .map_err(Error::store)?;
        let mut resident = ResidentVectors {
            version: dataset.version().version,
            dimension: 0,
            vectors: Vec::new(),
            blocks: Vec::with_capacity(batches.len()),
            inverse_norms: Vec::new(),
            admitted: PerFilterCache::default(),
        };
        for batch in batches.iter().filter(|b| b.num_rows() > 0) {
            resident.append(batch)?;
        }
        Ok(resident)
    }

    fn append(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let list = vector_column(batch)?;
        let dimension = usize::try_from(list.value_length()).unwrap_or(0);
        if self.dimension == 0 {
            self.dimension = dimension;
        } else if dimension != self.dimension {
            return Err(Error::storage("vectors of two lengths in one table"));
        }
        if dimension == 0 {
            return Err(Error::storage("the vector column has no dimensions"));
        }
        let vectors = flat_vectors(list)?;
        let dot = dot_product();
        self.inverse_norms.extend(
            vectors
                .chunks_exact(dimension)
                .map(|v| inverse_of_length(dot(v, v))),
        );
        self.vectors.extend_from_slice(&vectors);
        self.blocks.push(Block {
            first_row: u32::try_from(self.inverse_norms.len() - rows)
                .map_err(|_| Error::storage("too many rows to hold in memory"))?,
            ids: string_column(batch, "chunk_id")?.clone(),
            repos: string_column(batch, "repo")?.clone(),
            paths: string_column(batch, "path")?.clone(),
        });
        Ok(())
    }

    /// The table version these vectors were read from.
    pub(super) fn version(&self) -> u64 {
        self.version
    }

    /// The block holding `row` and the row's place in it.
    fn locate(&self, row: u32) -> (&Block, usize) {
        let at = self.blocks.partition_point(|b| b.first_row <= row) - 1;
        let block = &self.blocks[at];
        (block, (row - block.first_row) as usize)
    }

    /// The ids of the `limit` rows `filter` admits nearest to `vector` by cosine distance
    /// (ascending; ties in table order), with their distances.
    pub(super) fn nearest(
        &self,
        vector: &[f32],
        filter: &ChunkFilter,
        limit: usize,
    ) -> Result<Vec<(String, f32)>> {
        if self.inverse_norms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        if vector.len() != self.dimension {
            return Err(Error::storage(format!(
                "a query vector of {} dimensions against a table of {}",
                vector.len(),
                self.dimension
            )));
        }
        let dot = dot_product();
        let inverse = inverse_of_length(dot(vector, vector));
        let query: Vec<f32> = vector.iter().map(|x| x * inverse).collect();
        let dimension = self.dimension;
        let similarity = |row: u32| {
            let at = row as usize * dimension;
            let values = &self.vectors[at..at + dimension];
            (dot(&query, values) * self.inverse_norms[row as usize], row)
        };
        let mut scored: Vec<(f32, u32)> = if filter.is_unrestricted() {
            (0..self.inverse_norms.len() as u32)
                .map(similarity)
                .collect()
        } else {
            self.admitted_rows(filter)
                .iter()
                .copied()
                .map(similarity)
                .collect()
        };
        let best_first = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if scored.len() > limit {
            scored.select_nth_unstable_by(limit - 1, best_first);
            scored.truncate(limit);
        }
        scored.sort_unstable_by(best_first);
        Ok(scored
            .into_iter()
            .map(|(similarity, row)| {
                let (block, offset) = self.locate(row);
                (block.ids.value(offset).to_string(), 1.0 - similarity)
            })
            .collect())
    }

    /// The rows a restricting `filter` admits, kept per filter.
    fn admitted_rows(&self, filter: &ChunkFilter) -> Arc<Vec<u32>> {
        let key = filter.cache_key();
        if let Some(rows) = self.admitted.get(&key) {
            return rows;
        }
        let mut rows = Vec::new();
        for block in &self.blocks {
            for offset in 0..block.ids.len() {
                if filter.admits(block.repos.value(offset), block.paths.value(offset)) {
                    rows.push(block.first_row + offset as u32);
                }
            }
        }
        let rows = Arc::new(rows);
        self.admitted.insert(key, Arc::clone(&rows));
        rows
    }
}

/// 1 / the Euclidean length of a vector whose dot product with itself is `squared`, or 0
/// for a zero vector (which then is as far from every query as an orthogonal one).
fn inverse_of_length(squared: f32) -> f32 {
    if squared > 0.0 {
        1.0 / squared.sqrt()
    } else {
        0.0
    }
}

/// The fastest dot product this processor runs: AVX2 where it has it, otherwise the
/// portable one (which the compiler vectorises for the baseline instruction set).
fn dot_product() -> fn(&[f32], &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return dot_avx2;
    }
    dot_portable
}

/// Independent partial sums, so that the additions need no reordering to run in SIMD
/// lanes (the compiler may not reassociate float additions on its own).
const DOT_LANES: usize = 16;

#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let (a_blocks, a_rest) = a.as_chunks::<DOT_LANES>();
    let (b_blocks, b_rest) = b.as_chunks::<DOT_LANES>();
    let mut sums = [0.0f32; DOT_LANES];
    for (x, y) in a_blocks.iter().zip(b_blocks) {
        for lane in 0..DOT_LANES {
            sums[lane] += x[lane] * y[lane];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    sums.iter().sum::<f32>() + tail
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    #[target_feature(enable = "avx2")]
    fn lanes(a: &[f32], b: &[f32]) -> f32 {
        dot_lanes(a, b)
    }
    // SAFETY: only handed out by `dot_product` after it detected AVX2 on this processor.
    unsafe { lanes(a, b) }
}

#[cfg(test)]
mod tests {
    use super::super::reader::ScanParams;
    use super::super::{AnnIndex, AnnPolicy, VectorReader, VectorWriter};
    use super::*;
    use crate::chunk::Chunk;
    use crate::runtime;
    use lancedb::arrow::arrow_array::cast::AsArray;
    use lancedb::arrow::arrow_array::types::Float32Type;

    /// A table of `rows` chunks in two repositories and seven files, with deterministic
    /// 8-dimensional vectors (some of them duplicates, so ties occur).
    fn table(dir: &std::path::Path, rows: usize) -> VectorReader {
        let mut writer = VectorWriter::create(dir, 8, None, None).unwrap();
        for i in 0..rows {
            let chunk = Chunk {
                chunk_id: format!("c{i}"),
                repo: if i.is_multiple_of(3) { "a" } else { "b" }.to_string(),
                path: format!("src/f{}.rs", i % 7),
                language: "rust".into(),
                kind: "function".into(),
                symbol: format!("f{i}"),
                signature: String::new(),
                doc: String::new(),
                start_line: 1,
                end_line: 2,
                content: format!("fn f{i}() {{}}"),
                content_hash: format!("h{i}"),
                file_hash: String::new(),
                commit: String::new(),
            };
            let seed = (i % 150) as f32;
            let vector = (0..8)
                .map(|d| (seed * 0.7 + d as f32 * 1.3).sin())
                .collect();
            writer.add(chunk, format!("e{i}"), vector).unwrap();
        }
        writer.finish(AnnPolicy::EXACT).unwrap();
        VectorReader::open(dir, AnnIndex::Off).unwrap()
    }

    #[test]
    fn search_in_memory_ranks_as_lances_exact_scan_does() {
        let dir = tempfile::tempdir().unwrap();
        let reader = table(dir.path(), 300);
        let dataset = reader.dataset().unwrap();
        let only_a = ChunkFilter::repos(&["a".to_string()]);
        for q in 0..12 {
            let query: Vec<f32> = (0..8).map(|d| ((q * 5 + d) as f32 * 0.9).cos()).collect();
            for filter in [&ChunkFilter::everything(), &only_a] {
                let resident = reader.nearest(&query, filter, 20, 1.0).unwrap();
                let params = ScanParams {
                    limit: 20,
                    ef: 0,
                    refine_factor: 1,
                    mask: None,
                    sql: filter.to_sql(),
                };
                let scanned =
                    runtime::block_on(reader.scan_nearest(&dataset, &query, params)).unwrap();
                let mut lance: Vec<(String, f32)> = Vec::new();
                for batch in &scanned {
                    let ids = string_column(batch, "chunk_id").unwrap();
                    let distances = batch
                        .column_by_name("_distance")
                        .unwrap()
                        .as_primitive::<Float32Type>();
                    for i in 0..batch.num_rows() {
                        lance.push((ids.value(i).to_string(), distances.value(i)));
                    }
                }
                assert_eq!(resident.len(), lance.len());
                // Lance narrows the query to the column's half precision; the memory search
                // keeps it in single precision, so distances agree to half precision.
                for ((id, distance), (_, lance_distance)) in resident.iter().zip(&lance) {
                    assert!(
                        (distance - lance_distance).abs() < 1e-3,
                        "query {q}: {id} at {distance} where Lance ranks a row at {lance_distance}"
                    );
                    let row: usize = id[1..].parse().unwrap();
                    let repo = if row.is_multiple_of(3) { "a" } else { "b" };
                    let path = format!("src/f{}.rs", row % 7);
                    assert!(filter.admits(repo, &path), "{id} is outside the filter");
                }
            }
        }
    }

    #[test]
    fn every_dot_product_agrees_with_the_plain_sum() {
        for length in [0, 1, 15, 16, 17, 384, 385] {
            let a: Vec<f32> = (0..length).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..length).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            for dot in [dot_portable as fn(&[f32], &[f32]) -> f32, dot_product()] {
                assert!((dot(&a, &b) - plain).abs() < 1e-4, "length {length}");
            }
        }
    }

    #[test]
    fn a_zero_vector_has_no_direction() {
        assert_eq!(inverse_of_length(0.0), 0.0);
        assert!((inverse_of_length(25.0) - 0.2).abs() < 1e-7);
    }
}
