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

#include "bootstate.h"
#include "node.h"

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

const char *app_active_state(struct node *n) {
        static char state[32];
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *value = NULL;
        char *path = NULL;

        snprintf(state, sizeof state, "unknown");
        if (sd_bus_path_encode("/org/freedesktop/systemd1/unit", APP_TARGET, &path) >= 0 &&
            sd_bus_get_property_string(n->bus, "org.freedesktop.systemd1", path, "org.freedesktop.systemd1.Unit",
                                       "ActiveState", &error, &value) >= 0) {
                snprintf(state, sizeof state, "%s", value);
                free(value);
        }
        free(path);
        sd_bus_error_free(&error);
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

static int unit_string(struct node *n, const char *path, const char *iface, const char *name, char *buf, size_t size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *value = NULL;
        int r = sd_bus_get_property_string(n->bus, "org.freedesktop.systemd1", path, iface, name, &error, &value);
        if (r >= 0)
                snprintf(buf, size, "%s", value);
        free(value);
        sd_bus_error_free(&error);
        return r;
}

/* Whether UNIT is up when the settle time ends: loaded, not failed, not
 * still starting or stopping, and, a service, not restarted after a crash
 * meanwhile nor exited with an error. A service that has done its work and
 * exited cleanly (Type=oneshot) is up. If not, WHY says what it is. */
static bool app_unit_up(struct node *n, const char *unit, char *why, size_t size) {
        char *path = NULL, load[32] = "", active[32] = "", sub[32] = "", result[32] = "success";
        const char *unit_iface = "org.freedesktop.systemd1.Unit", *service_iface = "org.freedesktop.systemd1.Service";
        bool service = strlen(unit) > 8 && strcmp(unit + strlen(unit) - 8, ".service") == 0;
        uint32_t restarts = 0;
        int r;

        if ((r = sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit, &path)) < 0 ||
            (r = unit_string(n, path, unit_iface, "LoadState", load, sizeof load)) < 0 ||
            (r = unit_string(n, path, unit_iface, "ActiveState", active, sizeof active)) < 0 ||
            (r = unit_string(n, path, unit_iface, "SubState", sub, sizeof sub)) < 0 ||
            (service && (r = unit_string(n, path, service_iface, "Result", result, sizeof result)) < 0) ||
            (service && (r = sd_bus_get_property_trivial(n->bus, "org.freedesktop.systemd1", path, service_iface,
                                                         "NRestarts", NULL, 'u', &restarts)) < 0)) {
                free(path);
                snprintf(why, size, "cannot read the state of %s: %s", unit, strerror(-r));
                return false;
        }
        free(path);
        if (strcmp(load, "loaded") != 0)
                snprintf(why, size, "%s is %s", unit, load);
        else if (strcmp(result, "success") != 0)
                snprintf(why, size, "%s is %s (%s, result %s)", unit, active, sub, result);
        else if (restarts > 0)
                snprintf(why, size, "%s was restarted %u time(s)", unit, restarts);
        else if (strcmp(active, "active") == 0 || (service && strcmp(active, "inactive") == 0))
                return true;
        else
                snprintf(why, size, "%s is %s (%s)", unit, active, sub);
        return false;
}

/* The app is kos-app.target and every unit it wants or requires or that is
 * part of it: a unit only wanted can fail while the target stays active. */
static bool app_up(struct node *n, char *why, size_t size) {
        static const char *const lists[] = {"Wants", "Requires", "ConsistsOf"};
        const char *state = app_active_state(n);
        char *path = NULL;
        bool up = true;

        if (strcmp(state, "active") != 0) {
                snprintf(why, size, "%s is %s", APP_TARGET, state);
                return false;
        }
        if (sd_bus_path_encode("/org/freedesktop/systemd1/unit", APP_TARGET, &path) < 0) {
                snprintf(why, size, "out of memory");
                return false;
        }
        for (size_t i = 0; up && i < ELEMENTSOF(lists); i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                char **units = NULL;
                int r = sd_bus_get_property_strv(n->bus, "org.freedesktop.systemd1", path, "org.freedesktop.systemd1.Unit",
                                                 lists[i], &error, &units);
                if (r < 0) {
                        snprintf(why, size, "cannot read %s's %s: %s", APP_TARGET, lists[i],
                                 error.message ? error.message : strerror(-r));
                        up = false;
                }
                for (char **u = units; up && u && *u; u++)
                        up = app_unit_up(n, *u, why, size);
                for (char **u = units; u && *u; u++)
                        free(*u);
                free(units);
                sd_bus_error_free(&error);
        }
        free(path);
        return up;
}

static int on_settled(sd_event_source *s, uint64_t usec, void *userdata) {
        struct node *n = userdata;
        char why[256], failed[320];

        if (app_up(n, why, sizeof why)) {
                set_state(n, RUNNING);
                mark_good(n);
        } else {
                snprintf(failed, sizeof failed, "%s after %u s", why, n->settle);
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
