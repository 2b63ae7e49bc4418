/* SPDX-License-Identifier: MIT */
/* Update bundles, all of it: installing (bundle-install.h), writing
 * (bundle-write.h) and the garbage collection an install ends with (gc.h).
 * Kept for the programs that include it; new code includes what it uses. */
#pragma once

#include "bundle-install.h"
#include "bundle-write.h"
#include "gc.h"
