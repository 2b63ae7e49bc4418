/* SPDX-License-Identifier: MIT */
/* The rules by which a unit of kos-app.target is up (app-health.h). */
#include <errno.h>
#include <string.h>

#include "app-health.h"

static bool is(const char *value, const char *what) {
        return strcmp(value, what) == 0;
}

bool app_unit_judge(const char *unit, const struct unit_info *u, bool service, bool strict, struct kos_error *why) {
        bool skipped = (u->condition_at > 0 && !u->condition) || is(u->result, "exec-condition");

        if (is(u->load, "masked"))
                return true; /* disabled on purpose */
        if (!is(u->load, "loaded"))
                kos_error_set(why, -ESRCH, "%s is %s", unit, u->load);
        else if (service && !is(u->result, "success") && !is(u->result, "exec-condition"))
                kos_error_set(why, -ESRCH, "%s is %s (%s, result %s)", unit, u->active, u->sub, u->result);
        else if (service && u->restarts > 0)
                kos_error_set(why, -ESRCH, "%s was restarted %u time(s)", unit, u->restarts);
        else if (u->assert_at > 0 && !u->assert)
                kos_error_set(why, -ESRCH, "%s did not start: an Assert of it failed", unit);
        else if (is(u->active, "failed"))
                kos_error_set(why, -ESRCH, "%s is failed (%s)", unit, u->sub);
        else if (is(u->active, "active") || is(u->active, "reloading") || skipped || !strict)
                return true;
        else if (!is(u->active, "inactive"))
                kos_error_set(why, -ESRCH, "%s is still %s (%s)", unit, u->active, u->sub);
        else if (service && is(u->type, "oneshot") && u->ran_at > 0)
                return true; /* did its work and exited */
        else if (u->ran_at > 0)
                kos_error_set(why, -ESRCH, "%s has exited", unit);
        else
                kos_error_set(why, -ESRCH, "%s never started", unit);
        return false;
}
