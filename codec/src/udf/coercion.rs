//! Which argument types a Python UDF takes: exactly its declared ones, except that a row-wise
//! UDF takes any encoding of a declared string or binary type as it is.
//!
//! A row-wise UDF sees Python builtins, and `str` is `str` whether the column was `Utf8`,
//! `LargeUtf8`, `Utf8View` or dictionary-encoded. DataFusion reads Parquet strings as
//! `Utf8View`, so with an exact signature every string argument was first cast to the
//! declared `Utf8`: a copy of every value, thrown away once converted to Python. Executors
//! convert every one of these encodings themselves, in both lanes.
//!
//! A dictionary-encoded column of the declared type (of any type) also arrives as it is:
//! both lanes decode dictionaries value by value.
//!
//! Clients plan with the stock wheel, whose UDFs have exact signatures, so the plans they
//! send already hold such casts: [`without_needless_casts`] takes out those directly around
//! an argument. A cast the wheel moved into a common subexpression (two calls on one
//! column) stays.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::type_coercion::functions::{UDFCoercionExt, fields_with_udf};
use datafusion::logical_expr::{Cast, Expr, ExprSchemable, LogicalPlan, Signature};

use super::frame::{Convention, UdfFamily, UdfFrame};
use super::functions::PythonScalarUdf;

/// The signature DataFusion plans a UDF of `frame` with.
pub(super) fn signature_of(frame: &UdfFrame) -> Signature {
    // Only scalar UDFs are row-wise (and only they implement `coerce_types`).
    match (frame.signature.family, frame.signature.convention) {
        (UdfFamily::Scalar, Convention::Rows) => {
            Signature::user_defined(frame.signature.volatility)
        }
        _ => exact_signature(frame),
    }
}

/// The types `frame`'s UDF is called with for arguments of `arg_types` (a row-wise UDF's
/// [`ScalarUDFImpl::coerce_types`](datafusion::logical_expr::ScalarUDFImpl::coerce_types)):
/// what an exact signature would cast them to, except for arguments whose values Python
/// receives the same either way. Mismatched argument counts and impossible casts fail as with
/// an exact signature.
pub(super) fn row_argument_types(
    frame: &UdfFrame,
    arg_types: &[DataType],
) -> Result<Vec<DataType>> {
    let exact = Exact {
        name: &frame.signature.name,
        signature: exact_signature(frame),
    };
    let declared = &frame.signature.inputs;
    let unchanged: Vec<bool> = arg_types
        .iter()
        .enumerate()
        .map(|(i, actual)| {
            declared
                .get(i)
                .is_some_and(|d| arrives_unchanged(d.data_type(), actual))
        })
        .collect();
    // Exact coercion of the other arguments, with the unchanged ones in their declared type
    // (some encodings, such as BinaryView for LargeBinary, have no exact coercion at all).
    let fields: Vec<FieldRef> = arg_types
        .iter()
        .zip(&unchanged)
        .enumerate()
        .map(|(i, (actual, &unchanged))| {
            let t = if unchanged {
                declared[i].data_type()
            } else {
                actual
            };
            Arc::new(Field::new("", t.clone(), true))
        })
        .collect();
    let coerced = fields_with_udf(&fields, &exact)?;
    Ok(arg_types
        .iter()
        .zip(unchanged)
        .zip(coerced)
        .map(|((actual, unchanged), coerced)| {
            if unchanged {
                actual.clone()
            } else {
                coerced.data_type().clone()
            }
        })
        .collect())
}

/// `plan` without the casts in front of row-wise UDFs' arguments that would reach Python as
/// the same values uncast (a `Utf8View` column cast to a declared `Utf8`, say).
pub fn without_needless_casts(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let mut inputs: Vec<_> = node
            .inputs()
            .into_iter()
            .map(|i| i.schema().clone())
            .collect();
        // A join's filter reads both sides at once.
        if let (LogicalPlan::Join(_), [left, right]) = (&node, inputs.as_slice())
            && let Ok(both) = left.join(right)
        {
            inputs.push(Arc::new(both));
        }
        // A scan's pushed-down filters read the table's columns.
        if let LogicalPlan::TableScan(scan) = &node {
            let table = scan.source.schema();
            inputs.push(Arc::new(DFSchema::try_from_qualified_schema(
                scan.table_name.clone(),
                &table,
            )?));
        }
        // Output columns keep their names (parents refer to them), as optimizer rules do.
        let names = NamePreserver::new(&node);
        node.map_expressions(|expr| {
            let name = names.save(&expr);
            expr.transform_up(|expr| {
                let Expr::ScalarFunction(call) = &expr else {
                    return Ok(Transformed::no(expr));
                };
                let inner: &dyn Any = call.func.inner().as_ref();
                let Some(udf) = inner.downcast_ref::<PythonScalarUdf>() else {
                    return Ok(Transformed::no(expr));
                };
                let frame = udf.frame();
                let declared = &frame.signature.inputs;
                // A call of the wrong arity is left for planning to refuse.
                if frame.signature.convention != Convention::Rows
                    || call.args.len() != declared.len()
                {
                    return Ok(Transformed::no(expr));
                }
                let uncast = |arg: &Expr, declared: &DataType| -> Option<Expr> {
                    let Expr::Cast(Cast { expr, .. }) = arg else {
                        return None;
                    };
                    // The type the value had before the cast, from whichever input holds it.
                    let before = inputs
                        .iter()
                        .find_map(|schema| expr.get_type(schema).ok())?;
                    arrives_unchanged(declared, &before).then(|| expr.as_ref().clone())
                };
                let args: Vec<Option<Expr>> = call
                    .args
                    .iter()
                    .zip(declared)
                    .map(|(arg, d)| uncast(arg, d.data_type()))
                    .collect();
                if args.iter().all(Option::is_none) {
                    return Ok(Transformed::no(expr));
                }
                let args = args
                    .into_iter()
                    .zip(&call.args)
                    .map(|(uncast, arg)| uncast.unwrap_or_else(|| arg.clone()))
                    .collect();
                let call = ScalarFunction::new_udf(call.func.clone(), args);
                Ok(Transformed::yes(Expr::ScalarFunction(call)))
            })
            .map(|t| t.update_data(|expr| name.restore(expr)))
        })
    })
    .map(|t| t.data)
}

fn exact_signature(frame: &UdfFrame) -> Signature {
    let types = frame
        .signature
        .inputs
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    Signature::exact(types, frame.signature.volatility)
}

/// Whether a row-wise UDF declared to take `declared` gets the same Python values from a
/// column of `actual` as from one of `declared`.
fn arrives_unchanged(declared: &DataType, actual: &DataType) -> bool {
    use DataType::*;
    match (declared, actual) {
        (_, Dictionary(_, values)) => arrives_unchanged(declared, values),
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => true,
        _ => declared == actual,
    }
}

/// DataFusion's own coercion for an exact signature, asked through its UDF interface.
struct Exact<'a> {
    name: &'a str,
    signature: Signature,
}

impl UDFCoercionExt for Exact<'_> {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        // Only user-defined signatures ask for this; an exact one never does.
        Ok(arg_types.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::DataType::*;
    use datafusion::logical_expr::Volatility;

    use super::*;
    use crate::udf::frame::{Lane, UdfFamily, UdfSignature, WindowFlags};

    fn frame(convention: Convention, inputs: &[DataType]) -> UdfFrame {
        let signature = UdfSignature {
            name: "f".to_owned(),
            family: UdfFamily::Scalar,
            inputs: inputs
                .iter()
                .enumerate()
                .map(|(i, t)| Arc::new(Field::new(format!("a{i}"), t.clone(), true)))
                .collect(),
            returns: Arc::new(Field::new("r", Int64, true)),
            state: vec![],
            volatility: Volatility::Immutable,
            lane: Lane::SubInterpreter,
            convention,
            window: WindowFlags::default(),
        };
        UdfFrame::encode(signature, (3, 13), b"payload").unwrap()
    }

    #[test]
    fn string_and_binary_encodings_arrive_as_they_are() {
        let f = frame(Convention::Rows, &[Utf8, LargeBinary, Utf8View]);
        let dictionary = Dictionary(Box::new(Int32), Box::new(LargeUtf8));
        let types = row_argument_types(&f, &[Utf8View, BinaryView, dictionary.clone()]).unwrap();
        assert_eq!(types, vec![Utf8View, BinaryView, dictionary]);
    }

    #[test]
    fn other_arguments_are_cast_as_an_exact_signature_would() {
        let f = frame(Convention::Rows, &[Int64, Utf8, Float64]);
        let types = row_argument_types(&f, &[Int32, Null, Int64]).unwrap();
        assert_eq!(types, vec![Int64, Utf8, Float64]);
    }

    #[test]
    fn impossible_arguments_fail_as_with_an_exact_signature() {
        let f = frame(Convention::Rows, &[Int64]);
        let err = row_argument_types(&f, &[Int64, Int64])
            .unwrap_err()
            .to_string();
        assert!(err.contains("'f'"), "{err}");
        let list = List(Arc::new(Field::new("item", Int64, true)));
        let err = row_argument_types(&f, &[list]).unwrap_err().to_string();
        assert!(err.contains("'f'"), "{err}");
        // A string is not bytes: Python would see `str` where the UDF expects `bytes`.
        let f = frame(Convention::Rows, &[Binary]);
        let err = row_argument_types(&f, &[Utf8View]).unwrap_err().to_string();
        assert!(err.contains("Utf8View"), "{err}");
    }

    /// A scan of `t`: `w: Utf8View, n: Int32`.
    fn scan() -> datafusion::logical_expr::LogicalPlanBuilder {
        let schema = datafusion::arrow::datatypes::Schema::new(vec![
            Field::new("w", Utf8View, true),
            Field::new("n", Int32, true),
        ]);
        datafusion::logical_expr::logical_plan::builder::table_scan(Some("t"), &schema, None)
            .unwrap()
    }

    /// `f(CAST(w AS Utf8))` and `g(CAST(n AS Int64))` over [`scan`], with `f`'s frame of `convention`, before and after the rewrite.
    fn rewritten(convention: Convention) -> (LogicalPlan, LogicalPlan) {
        use datafusion::logical_expr::{ScalarUDF, cast, col};
        let udf =
            |frame: UdfFrame| ScalarUDF::new_from_impl(PythonScalarUdf::new(Arc::new(frame), None));
        let f = udf(frame(convention, &[Utf8]));
        let g = udf(frame(Convention::Rows, &[Int64]));
        let plan = scan()
            .project(vec![
                f.call(vec![cast(col("w"), Utf8)]),
                g.call(vec![cast(col("n"), Int64)]),
            ])
            .unwrap()
            .build()
            .unwrap();
        (plan.clone(), without_needless_casts(plan).unwrap())
    }

    #[test]
    fn casts_around_string_arguments_are_dropped_and_names_kept() {
        let (before, after) = rewritten(Convention::Rows);
        let text = after.display_indent().to_string();
        assert!(text.contains("f(t.w)"), "{text}");
        // Python sees an int either way, but Int32 is not Int64's encoding: that cast stays.
        assert!(text.contains("f(CAST(t.n AS Int64))"), "{text}");
        assert_eq!(before.schema().field_names(), after.schema().field_names());
    }

    #[test]
    fn pyarrow_udfs_keep_their_casts() {
        let (before, after) = rewritten(Convention::Pyarrow);
        assert_eq!(before, after);
    }

    #[test]
    fn pyarrow_udfs_keep_their_exact_signature() {
        let f = frame(Convention::Pyarrow, &[Utf8]);
        assert_eq!(
            signature_of(&f),
            Signature::exact(vec![Utf8], Volatility::Immutable)
        );
        let f = frame(Convention::Rows, &[Utf8]);
        assert_eq!(
            signature_of(&f),
            Signature::user_defined(Volatility::Immutable)
        );
    }
}
