/* SPDX-License-Identifier: MIT */
/* The rules by which a unit of kos-app.target is up (app-health.h). */
#include <stdio.h>
#include <string.h>

#include "app-health.h"

static bool is(const char *value, const char *what) {
        return strcmp(value, what) == 0;
}

bool app_unit_judge(const char *unit, const struct unit_info *u, bool service, bool strict, char *why, size_t size) {
        bool skipped = (u->condition_at > 0 && !u->condition) || is(u->result, "exec-condition");

        if (is(u->load, "masked"))
                return true; /* disabled on purpose */
        if (!is(u->load, "loaded"))
                snprintf(why, size, "%s is %s", unit, u->load);
        else if (service && !is(u->result, "success") && !is(u->result, "exec-condition"))
                snprintf(why, size, "%s is %s (%s, result %s)", unit, u->active, u->sub, u->result);
        else if (service && u->restarts > 0)
                snprintf(why, size, "%s was restarted %u time(s)", unit, u->restarts);
        else if (u->assert_at > 0 && !u->assert)
                snprintf(why, size, "%s did not start: an Assert of it failed", unit);
        else if (is(u->active, "failed"))
                snprintf(why, size, "%s is failed (%s)", unit, u->sub);
        else if (is(u->active, "active") || is(u->active, "reloading") || skipped || !strict)
                return true;
        else if (!is(u->active, "inactive"))
                snprintf(why, size, "%s is still %s (%s)", unit, u->active, u->sub);
        else if (service && is(u->type, "oneshot") && u->ran_at > 0)
                return true; /* did its work and exited */
        else if (u->ran_at > 0)
                snprintf(why, size, "%s has exited", unit);
        else
                snprintf(why, size, "%s never started", unit);
        return false;
}
