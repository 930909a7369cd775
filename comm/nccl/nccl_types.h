// seqscale's element types and reductions as NCCL's enums. Separate from
// nccl_communicator.h (a plain header) because it needs nccl.h: include it only where NCCL
// is, i.e. the backend and its tests, which check the mapping enum by enum (at world size 1
// every reduction is a copy, so a wrong mapping is invisible to the collectives).
#pragma once
#include <nccl.h>

#include "comm/communicator.h"

namespace seqscale::comm {

ncclDataType_t nccl_type(DType t);  // kBool -> ncclUint8 (one byte per element)
ncclRedOp_t nccl_op(ReduceOp op);

}  // namespace seqscale::comm
