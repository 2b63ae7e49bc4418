/* SPDX-License-Identifier: MIT */
/* When a unit of kos-app.target is up (node/app-health.c): one test per row
 * of the table in docs/node-manager.md, "kos-app". */
#include <string.h>

#include "app-health.h"
#include "test.h"

/* A daemon up and running: what systemd shows for kos-demo-app.service. */
static struct unit_info running(void) {
        return (struct unit_info){.load = "loaded", .active = "active", .sub = "running", .result = "success",
                                  .type = "simple", .condition = 1, .condition_at = 1000, .assert = 1,
                                  .assert_at = 1000, .ran_at = 1000};
}

static void set_state(struct unit_info *u, const char *active, const char *sub) {
        snprintf(u->active, sizeof u->active, "%s", active);
        snprintf(u->sub, sizeof u->sub, "%s", sub);
}

static bool judge(const struct unit_info *u, bool strict, struct kos_error *why) {
        return app_unit_judge("d.service", u, true, strict, why);
}

TEST(app_unit_running_or_reloading_is_up_and_masked_is_up) {
        struct kos_error why = KOS_ERROR_NULL;
        struct unit_info u = running();

        CHECK(judge(&u, true, &why));
        set_state(&u, "reloading", "running");
        CHECK(judge(&u, true, &why));
        u = (struct unit_info){.load = "masked", .active = "inactive", .sub = "dead", .result = "success"};
        CHECK(judge(&u, true, &why));
}

TEST(app_unit_not_loaded_is_down_and_named) {
        struct kos_error why = KOS_ERROR_NULL;
        struct unit_info u = {.load = "not-found", .active = "inactive", .sub = "dead", .result = "success"};

        CHECK(!judge(&u, true, &why) && strcmp(why.msg, "d.service is not-found") == 0);
        CHECK(!judge(&u, false, &why));
}

TEST(app_service_that_exited_with_an_error_or_waits_to_restart_is_down) {
        struct kos_error why = KOS_ERROR_NULL;
        struct unit_info u = running();

        set_state(&u, "failed", "failed");
        snprintf(u.result, sizeof u.result, "exit-code");
        CHECK(!judge(&u, true, &why) && strcmp(why.msg, "d.service is failed (failed, result exit-code)") == 0);
        /* Restart=on-failure, between the crash and the restart. */
        set_state(&u, "activating", "auto-restart");
        snprintf(u.result, sizeof u.result, "signal");
        CHECK(!judge(&u, true, &why) && strcmp(why.msg, "d.service is activating (auto-restart, result signal)") == 0);
        /* Only part of the target, started on demand: a failure still counts. */
        CHECK(!judge(&u, false, &why));
}

TEST(app_service_restarted_after_a_crash_is_down_though_running_again) {
        struct kos_error why = KOS_ERROR_NULL;
        struct unit_info u = running();

        u.restarts = 2;
        CHECK(!judge(&u, true, &why) && strcmp(why.msg, "d.service was restarted 2 time(s)") == 0);
}

TEST(app_unit_whose_assert_failed_or_that_failed_is_down) {
        struct kos_error why = KOS_ERROR_NULL;
        struct unit_info u = {.load = "loaded", .active = "inactive", .sub = "dead", .result = "success",
                              .assert = 0, .assert_at = 500};

        CHECK(!judge(&u, true, &why) && strstr(why.msg, "an Assert of it failed"));
        /* A timer (no Result) that failed. */
        u = (struct unit_info){.load = "loaded", .active = "failed", .sub = "failed", .result = "success", .ran_at = 9};
        CHECK(!app_unit_judge("t.timer", &u, false, true, &why) && strcmp(why.msg, "t.timer is failed (failed)") == 0);
}

TEST(app_unit_skipped_by_a_condition_is_up) {
        struct kos_error why = KOS_ERROR_NULL;
        struct unit_info u = {.load = "loaded", .active = "inactive", .sub = "dead", .result = "success",
                              .condition = 0, .condition_at = 700};

        CHECK(judge(&u, true, &why));
        CHECK(app_unit_judge("t.timer", &u, false, true, &why));
        u = (struct unit_info){.load = "loaded", .active = "inactive", .sub = "dead", .result = "exec-condition",
                               .type = "simple", .condition = 1, .condition_at = 700, .ran_at = 800};
        CHECK(judge(&u, true, &why));
}

TEST(app_unit_still_starting_is_down_when_pulled_in_and_up_when_only_part_of_the_target) {
        struct kos_error why = KOS_ERROR_NULL;
        struct unit_info u = running();

        set_state(&u, "activating", "start");
        CHECK(!judge(&u, true, &why) && strcmp(why.msg, "d.service is still activating (start)") == 0);
        CHECK(judge(&u, false, &why));
}

TEST(app_oneshot_that_ran_is_up_a_daemon_that_exited_or_never_started_is_down) {
        struct kos_error why = KOS_ERROR_NULL;
        struct unit_info u = running();

        set_state(&u, "inactive", "dead");
        snprintf(u.type, sizeof u.type, "oneshot");
        CHECK(judge(&u, true, &why));
        snprintf(u.type, sizeof u.type, "simple"); /* exited 0: the daemon is gone */
        CHECK(!judge(&u, true, &why) && strcmp(why.msg, "d.service has exited") == 0);
        u.ran_at = 0; /* a dependency failed, or its job is still queued */
        snprintf(u.type, sizeof u.type, "oneshot");
        CHECK(!judge(&u, true, &why) && strcmp(why.msg, "d.service never started") == 0);
        CHECK(judge(&u, false, &why)); /* only part of the target: started on demand */
}
