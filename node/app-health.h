/* SPDX-License-Identifier: MIT */
/* Whether one unit of kos-app.target is up when the settle time ends, from
 * what systemd says of it over D-Bus (org.freedesktop.systemd1(5)); the
 * rules are the table of docs/node-manager.md, "kos-app". node/app.c reads
 * the properties; this judges them, and is unit-tested alone. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"

struct unit_info {
        char load[32], active[32], sub[32]; /* LoadState, ActiveState, SubState */
        char result[32], type[32];          /* a service's Result and Type ("success", "" otherwise) */
        int condition, assert;              /* ConditionResult, AssertResult */
        uint64_t condition_at, assert_at;   /* ConditionTimestampMonotonic, AssertTimestampMonotonic */
        uint64_t ran_at;                    /* InactiveExitTimestampMonotonic: 0 if never started */
        uint32_t restarts;                  /* a service's NRestarts */
};

/* SERVICE: UNIT is a .service. STRICT: kos-app.target pulls it in (Wants=,
 * Requires=, Requisite=, BindsTo=, Upholds=), so it must have started; a unit
 * only part of the target (PartOf=, BindsTo= on its side) may be started on
 * demand, and is down only once it has failed. True if up; if not, WHY
 * says what it is (code -ESRCH). */
bool app_unit_judge(const char *unit, const struct unit_info *u, bool service, bool strict, struct kos_error *why);
