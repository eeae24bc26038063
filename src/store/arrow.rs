//! Arrow helpers shared by the vector table, the ANN search and the embedding cache: the
//! `vector` column's shape and typed access to a record batch's columns. Nothing here knows
//! about chunks or queries.

use std::sync::Arc;

use half::f16;
use half::slice::HalfFloatSliceExt;
use lancedb::arrow::arrow_array::cast::AsArray;
use lancedb::arrow::arrow_array::types::{Float16Type, Float32Type};
use lancedb::arrow::arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, FixedSizeListArray, Float16Array, Float32Array,
    PrimitiveArray, RecordBatch, StringArray,
};
use lancedb::arrow::arrow_schema::{DataType, Field};

use crate::error::{Error, Result};

/// The `vector` column's field: half-precision floats. Embedding vectors keep their
/// ranking at that precision (a relative error under 0.1% per component), at half the
/// bytes of single precision on disk and in the embedding cache.
pub(super) fn vector_field(dimension: usize) -> Field {
    Field::new(
        "vector",
        DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float16, true)),
            dimension as i32,
        ),
        false,
    )
}

/// A `vector` column from vectors of `dimension` floats, stored as [`vector_field`] says.
pub(super) fn vector_array<'v>(
    vectors: impl Iterator<Item = &'v Vec<f32>>,
    dimension: usize,
) -> ArrayRef {
    Arc::new(
        FixedSizeListArray::from_iter_primitive::<Float16Type, _, _>(
            vectors.map(|v| {
                Some(
                    v.iter()
                        .map(|&x| Some(f16::from_f32(x)))
                        .collect::<Vec<_>>(),
                )
            }),
            dimension as i32,
        ),
    )
}

/// The `vector` column of a batch as the fixed-size lists it is stored as.
pub(super) fn vector_column(batch: &RecordBatch) -> Result<&FixedSizeListArray> {
    batch
        .column_by_name("vector")
        .ok_or_else(|| Error::storage("the vector column is missing"))?
        .as_fixed_size_list_opt()
        .ok_or_else(|| Error::storage("the vector column is not a list of vectors"))
}

/// The `vector` column of a batch, one vector per row: half-precision as written now, or
/// single-precision as in indexes and caches of earlier codeq versions.
pub(super) fn vectors_of(batch: &RecordBatch) -> Result<Vec<Vec<f32>>> {
    let list = vector_column(batch)?;
    let dimension = usize::try_from(list.value_length()).unwrap_or(0);
    let values = flat_vectors(list)?;
    if dimension == 0 {
        return Ok(vec![Vec::new(); batch.num_rows()]);
    }
    Ok(values
        .chunks_exact(dimension)
        .map(<[f32]>::to_vec)
        .collect())
}

/// Every component of a `vector` column's rows, row after row, as single-precision floats.
pub(super) fn flat_vectors(list: &FixedSizeListArray) -> Result<Vec<f32>> {
    let dimension = usize::try_from(list.value_length()).unwrap_or(0);
    let start = usize::try_from(list.value_offset(0)).unwrap_or(0);
    let wanted = list.len() * dimension;
    let values = list.values();
    if values.len() < start + wanted || values.null_count() > 0 {
        return Err(Error::storage(
            "the vector column does not hold its rows' vectors",
        ));
    }
    let values = values.slice(start, wanted);
    if let Some(halves) = values.as_primitive_opt::<Float16Type>() {
        let mut out = vec![0.0; wanted];
        halves.values().convert_to_f32_slice(&mut out);
        Ok(out)
    } else if let Some(singles) = values.as_primitive_opt::<Float32Type>() {
        Ok(singles.values().to_vec())
    } else {
        Err(Error::storage(format!(
            "the vector column holds {} values, not floats",
            values.data_type()
        )))
    }
}

/// `vector` as a search key of the element type of a `vector` column of `column_type`
/// (half precision for tables written now, single for earlier ones).
pub(super) fn search_key(vector: &[f32], column_type: &DataType) -> ArrayRef {
    match column_type {
        DataType::FixedSizeList(item, _) if item.data_type() == &DataType::Float16 => Arc::new(
            Float16Array::from(vector.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>()),
        ),
        _ => Arc::new(Float32Array::from(vector.to_vec())),
    }
}

/// The text column `name` of `batch`.
pub(super) fn string_column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| Error::storage(format!("the column {name} is missing or not text")))
}

/// The primitive column `name` of `batch` (`T` its Arrow type).
pub(super) fn primitive_column<'b, T: ArrowPrimitiveType>(
    batch: &'b RecordBatch,
    name: &str,
) -> Result<&'b PrimitiveArray<T>> {
    batch
        .column_by_name(name)
        .map(|c| c.as_primitive::<T>())
        .ok_or_else(|| Error::storage(format!("the column {name} is missing")))
}
