//! The sizes a build reports: parameters by part, bytes of the teacher's and
//! the written student's weight files, FLOPs per token from the plan's cost,
//! their ratios, and how the real weight file compares with the plan.

use std::collections::BTreeMap;
use std::path::Path;

use super::teacher::{self, Teacher, Tensors};
use crate::base::TeacherRef;
use crate::diag::Diag;
use crate::eval::build_report::Sizes;
use crate::eval::report::{params_by_part, Size};
use crate::ir::Program;

/// Measures the student whose logical tensors are `student` and whose weight
/// file is `weights_file` against `teacher`.
pub fn measure(
    program: &Program,
    teacher: &Teacher,
    student: &Tensors,
    weights_file: &Path,
) -> Result<Sizes, Diag> {
    let student_bytes = std::fs::metadata(weights_file)
        .map_err(|e| Diag::io("plcc::io::read", "measure", weights_file, &e))?
        .len();
    // The plan estimates tensor data: the file's header (tensor names and
    // shapes) is not part of it.
    let header_bytes = safetensors_header_bytes(weights_file)?;
    let teacher_bytes = match &program.plan.teacher.reference {
        TeacherRef::Dir(d) => std::fs::metadata(d.join("model.safetensors"))
            .map(|m| m.len())
            .unwrap_or(0),
        TeacherRef::Builtin(_) => {
            teacher::to_tensor_set(&teacher.tensors)?.to_bytes()?.len() as u64
        }
    };
    let count = |t: &Tensors| -> Vec<(String, usize)> {
        t.iter().map(|(n, x)| (n.clone(), x.elem_count())).collect()
    };
    let teacher_parts = params_by_part(
        count(&teacher.tensors)
            .iter()
            .chain(count(&teacher.extra).iter())
            .map(|(n, c)| (n, *c)),
    );
    let student_parts = params_by_part(count(student).iter().map(|(n, c)| (n, *c)));
    let cost = &program.plan.cost;
    let encoder = |m: &BTreeMap<String, u64>| m.get("encoder").copied().unwrap_or(0);
    let ratio = |t: u64, s: u64| t as f64 / s.max(1) as f64;
    let mut ratios = BTreeMap::new();
    ratios.insert(
        "encoder_params".into(),
        ratio(encoder(&teacher_parts), encoder(&student_parts)),
    );
    ratios.insert(
        "params".into(),
        ratio(cost.teacher.params, cost.student.params),
    );
    ratios.insert("bytes".into(), ratio(teacher_bytes, student_bytes));
    ratios.insert(
        "flops_per_token".into(),
        ratio(cost.teacher.flops_per_token, cost.student.flops_per_token),
    );
    Ok(Sizes {
        teacher: Size {
            params: cost.teacher.params,
            params_by_part: teacher_parts,
            bytes: teacher_bytes,
            flops_per_token: cost.teacher.flops_per_token,
        },
        student: Size {
            params: cost.student.params,
            params_by_part: student_parts,
            bytes: student_bytes,
            flops_per_token: cost.student.flops_per_token,
        },
        ratios,
        planned_student_bytes: cost.student.bytes,
        planned_teacher_bytes: cost.teacher.bytes,
        bytes_vs_plan: student_bytes.saturating_sub(header_bytes) as f64
            / cost.student.bytes.max(1) as f64,
    })
}

/// The bytes before the tensor data of a safetensors file: the 8-byte
/// length and the JSON header it gives.
fn safetensors_header_bytes(path: &Path) -> Result<u64, Diag> {
    use std::io::Read;
    let mut len = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut len))
        .map_err(|e| Diag::io("plcc::io::read", "measure", path, &e))?;
    Ok(8 + u64::from_le_bytes(len))
}
