/* SPDX-License-Identifier: MIT */
/* Node Manager and systemd, over systemd's private D-Bus socket (sd-bus):
 * starting kos-app.target and following its job, the settle time after
 * which the boot is marked good, reboots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "app-health.h"
#include "bootstate.h"
#include "node.h"

#define SYSTEMD_UNIT_PATH "/org/freedesktop/systemd1/unit"

static const char *const state_names[] = {"starting", "installing", "holding", "starting-app", "settling", "running",
                                          "app-failed", "rebooting"};

const char *node_state_name(enum state s) {
        return s < ELEMENTSOF(state_names) ? state_names[s] : "unknown";
}

void set_state(struct node *n, enum state s) {
        n->state = s;
        sd_notifyf(false, "STATUS=%s", node_state_name(s));
}

static int systemd_start_unit(struct node *n, const char *unit, const char *mode, char *ret_job, size_t size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *job;
        int r = sd_bus_call_method(n->bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                   "org.freedesktop.systemd1.Manager", "StartUnit", &error, &reply, "ss", unit, mode);
        if (r < 0) {
                event("cannot start %s: %s", unit, error.message ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "o", &job);
        if (r >= 0 && ret_job)
                snprintf(ret_job, size, "%s", job);
        sd_bus_message_unref(reply);
        return r;
}

void request_reboot(struct node *n, const char *why) {
        event("rebooting: %s", why);
        set_state(n, REBOOTING);
        sync();
        systemd_start_unit(n, "reboot.target", "replace-irreversibly", NULL, 0);
}

/* One property of the unit at PATH: TYPE 's' into a char[32], else a
 * trivial type into RET. On failure, WHY says which and why. */
static int unit_property(struct node *n, const char *path, const char *iface, const char *name, char type, void *ret,
                         struct kos_error *why) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *value = NULL;
        int r = type == 's' ? sd_bus_get_property_string(n->bus, "org.freedesktop.systemd1", path, iface, name, &error, &value)
                            : sd_bus_get_property_trivial(n->bus, "org.freedesktop.systemd1", path, iface, name, &error, type, ret);
        if (r >= 0 && type == 's')
                snprintf(ret, 32, "%s", value);
        if (r < 0)
                kos_error_set(why, r, "cannot read %s: %s", name, error.message ? error.message : strerror(-r));
        free(value);
        sd_bus_error_free(&error);
        return r;
}

const char *app_active_state(struct node *n) {
        static char state[32];
        char *path = NULL;

        if (sd_bus_path_encode(SYSTEMD_UNIT_PATH, APP_TARGET, &path) < 0 ||
            unit_property(n, path, "org.freedesktop.systemd1.Unit", "ActiveState", 's', state, NULL) < 0)
                snprintf(state, sizeof state, "unknown");
        free(path);
        return state;
}

/* The app did not come up. A manifest on trial reboots, so that the Boot
 * Kernel counts the try and, once they are used up, falls back by itself. */
static void app_failed(struct node *n, const char *why) {
        struct kos_boot_state st = {0};

        set_state(n, APP_FAILED);
        event("%s: the boot is not marked good", why);
        if (n->have_imagefs && kos_boot_state_read(&n->img, n->id, &st) >= 0 && st.kind == KOS_BOOT_STATE_TRIES)
                request_reboot(n, st.tries_left > 0 ? "manifest on trial failed; trying it again"
                                                    : "manifest on trial failed and has no tries left; the Boot Kernel falls back");
}

static int read_unit(struct node *n, const char *unit, bool service, struct unit_info *u, struct kos_error *why) {
        static const char unit_iface[] = "org.freedesktop.systemd1.Unit", service_iface[] = "org.freedesktop.systemd1.Service";
        const struct {
                bool service;
                const char *name;
                char type;
                void *ret;
        } props[] = {
                {false, "LoadState", 's', u->load},
                {false, "ActiveState", 's', u->active},
                {false, "SubState", 's', u->sub},
                {false, "ConditionResult", 'b', &u->condition},
                {false, "ConditionTimestampMonotonic", 't', &u->condition_at},
                {false, "AssertResult", 'b', &u->assert},
                {false, "AssertTimestampMonotonic", 't', &u->assert_at},
                {false, "InactiveExitTimestampMonotonic", 't', &u->ran_at},
                {true, "Result", 's', u->result},
                {true, "Type", 's', u->type},
                {true, "NRestarts", 'u', &u->restarts},
        };
        char *path = NULL;
        int r = sd_bus_path_encode(SYSTEMD_UNIT_PATH, unit, &path);

        *u = (struct unit_info){.result = "success"};
        if (r < 0)
                kos_error_set(why, r, "cannot name %s on the bus: %s", unit, strerror(-r));
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(props); i++)
                if (service || !props[i].service)
                        r = unit_property(n, path, props[i].service ? service_iface : unit_iface, props[i].name, props[i].type,
                                          props[i].ret, why);
        free(path);
        return r;
}

/* Whether UNIT is up when the settle time ends (app-health.h); STRICT: the
 * target pulls it in. If not, WHY says what it is. */
static bool app_unit_up(struct node *n, const char *unit, bool strict, struct kos_error *why) {
        size_t len = strlen(unit);
        bool service = len > 8 && strcmp(unit + len - 8, ".service") == 0;
        struct unit_info u;

        if (read_unit(n, unit, service, &u, why) < 0) {
                kos_error_prefix(why, "%s: ", unit);
                return false;
        }
        return app_unit_judge(unit, &u, service, strict, why);
}

static bool in_strv(char **list, const char *s) {
        for (; list && *list; list++)
                if (strcmp(*list, s) == 0)
                        return true;
        return false;
}

/* The app is kos-app.target and its units: those it wants or requires
 * (Wants=, Requires=, Requisite=, BindsTo=, Upholds=: strict), and those
 * part of it (PartOf= and BindsTo= of theirs: ConsistsOf, BoundBy). A unit
 * it only wants can fail while the target stays active. */
static bool app_up(struct node *n, struct kos_error *why) {
        static const char *const lists[] = {"Wants", "Requires", "Requisite", "BindsTo", "Upholds", "ConsistsOf", "BoundBy"};
        enum { N_STRICT = 5 };
        char **units[ELEMENTSOF(lists)] = {0};
        const char *state = app_active_state(n);
        char *path = NULL;
        bool up = strcmp(state, "active") == 0;

        if (!up)
                kos_error_set(why, -ESRCH, "%s is %s", APP_TARGET, state);
        else if (sd_bus_path_encode(SYSTEMD_UNIT_PATH, APP_TARGET, &path) < 0) {
                kos_error_set(why, -ENOMEM, "out of memory");
                up = false;
        }
        for (size_t i = 0; up && i < ELEMENTSOF(lists); i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int r = sd_bus_get_property_strv(n->bus, "org.freedesktop.systemd1", path, "org.freedesktop.systemd1.Unit",
                                                 lists[i], &error, &units[i]);
                if (r < 0) {
                        kos_error_set(why, r, "cannot read %s's %s: %s", APP_TARGET, lists[i],
                                 error.message ? error.message : strerror(-r));
                        up = false;
                }
                sd_bus_error_free(&error);
        }
        for (size_t i = 0; up && i < ELEMENTSOF(lists); i++)
                for (char **u = units[i]; up && u && *u; u++) {
                        bool strict = false, seen = false;
                        for (size_t j = 0; j < ELEMENTSOF(lists); j++) {
                                if (j < i && in_strv(units[j], *u))
                                        seen = true; /* judged already */
                                if (j < N_STRICT && in_strv(units[j], *u))
                                        strict = true;
                        }
                        if (!seen)
                                up = app_unit_up(n, *u, strict, why);
                }
        for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
                for (char **u = units[i]; u && *u; u++)
                        free(*u);
                free(units[i]);
        }
        free(path);
        return up;
}

static int on_settled(sd_event_source *s, uint64_t usec, void *userdata) {
        struct node *n = userdata;
        struct kos_error why = KOS_ERROR_NULL;

        if (app_up(n, &why)) {
                set_state(n, RUNNING);
                mark_good(n);
        } else {
                char failed[KOS_ERROR_MSG_MAX + 32];
                snprintf(failed, sizeof failed, "%s after %u s", why.msg, n->settle);
                app_failed(n, failed);
        }
        return 0;
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct node *n = userdata;
        const char *job, *unit, *result;
        uint32_t id;

        if (sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) < 0 || strcmp(job, n->app_job) != 0)
                return 0;
        if (strcmp(result, "done") != 0) {
                char why[128];
                snprintf(why, sizeof why, "starting %s failed (%s)", APP_TARGET, result);
                app_failed(n, why);
                return 0;
        }
        set_state(n, SETTLING);
        event("%s started; marking the boot good if it stays up for %u s", APP_TARGET, n->settle);
        sd_event_add_time_relative(n->event, NULL, CLOCK_MONOTONIC, (uint64_t)n->settle * 1000000, 0, on_settled, n);
        return 0;
}

int start_app(struct node *n) {
        set_state(n, STARTING_APP);
        event("starting %s", APP_TARGET);
        int r = systemd_start_unit(n, APP_TARGET, "replace", n->app_job, sizeof n->app_job);
        if (r < 0)
                set_state(n, APP_FAILED);
        return r;
}

int connect_systemd(struct node *n) {
        int r;

        /* systemd's private socket: works with no D-Bus daemon running. */
        if ((r = sd_bus_new(&n->bus)) < 0 || (r = sd_bus_set_address(n->bus, "unix:path=/run/systemd/private")) < 0 ||
            (r = sd_bus_start(n->bus)) < 0)
                return r;
        if ((r = sd_bus_attach_event(n->bus, n->event, 0)) < 0)
                return r;
        r = sd_bus_match_signal(n->bus, NULL, NULL, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                                "JobRemoved", on_job_removed, n);
        if (r < 0)
                return r;
        return sd_bus_call_method(n->bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                  "org.freedesktop.systemd1.Manager", "Subscribe", NULL, NULL, NULL);
}
