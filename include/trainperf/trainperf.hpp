// trainperf — the analytical core in one include. No Eigen, CUDA, MPI or file I/O here:
// kernels (kernels/), collectives (comm/) and readers (io/) are included separately, and so is
// the planner (planner.hpp), which brings in threads.
// SPDX-License-Identifier: Apache-2.0
#pragma once

#define TRAINPERF_VERSION_MAJOR 0
#define TRAINPERF_VERSION_MINOR 1
#define TRAINPERF_VERSION_PATCH 0

#include "adapters.hpp"
#include "batch.hpp"
#include "calibration.hpp"
#include "collectives.hpp"
#include "error.hpp"
#include "flops.hpp"
#include "hardware.hpp"
#include "layout.hpp"
#include "memory.hpp"
#include "metrics.hpp"
#include "model.hpp"
#include "names.hpp"
#include "parallel.hpp"
#include "partition.hpp"
#include "presets.hpp"
#include "profile.hpp"
#include "report.hpp"
#include "schedule.hpp"
#include "step_time.hpp"
#include "units.hpp"
