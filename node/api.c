/* SPDX-License-Identifier: MIT */
/* Node Manager's Varlink API on /run/kos/node.sock (docs/node-manager.md):
 * Status for anyone, every other method for root only. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "active.h"
#include "beneath.h"
#include "bootstate.h"
#include "early.h"
#include "installer.h"
#include "node.h"

#define reply_error varlink_error
#define REPLY_EMPTY() json_pack("{s:{}}", "parameters")

static json_t *status_json(struct node *n) {
        struct kos_active_list active = {0};
        struct kos_boot_state st = {0};
        json_t *manifests = json_array(), *fallback = json_null();

        if (n->have_imagefs && kos_active_read(&n->img, &active) >= 0) {
                for (size_t i = 0; i < active.n; i++) {
                        char state[32] = "none";
                        uint8_t id[KOS_SHA256_LEN];
                        if (!active.entries[i].name_valid)
                                continue;
                        if (kos_imagefs_manifest_id(&n->img, active.entries[i].name, id) >= 0) {
                                if (kos_boot_state_read(&n->img, id, &st) >= 0)
                                        snprintf(state, sizeof state, st.kind == KOS_BOOT_STATE_GOOD ? "good"
                                                                      : st.kind == KOS_BOOT_STATE_TRIES ? "tries-%u" : "none",
                                                 st.tries_left);
                        }
                        bool booted = strcmp(active.entries[i].name, n->name) == 0;
                        json_array_append_new(manifests, json_pack("{s:s, s:s, s:b}", "name", active.entries[i].name,
                                                                   "boot_state", state, "booted", booted));
                        if (i == 0 && !booted) {
                                char text[300];
                                snprintf(text, sizeof text, "%s is first in active but %s was booted%s",
                                         active.entries[0].name, n->name,
                                         strcmp(state, "tries-0") == 0 ? ": its tries were used up and it was never marked good, so the Boot Kernel fell back" : "");
                                json_decref(fallback);
                                fallback = json_string(text);
                        }
                }
        }
        json_t *install = n->job.running ? json_pack("{s:s, s:I, s:I}", "bundle", n->job.name, "done_bytes",
                                                     (json_int_t)n->job.done, "total_bytes", (json_int_t)n->job.total)
                                         : json_null();
        json_t *floor = n->have_floor ? json_pack("{s:I, s:s, s:s?}", "value", (json_int_t)n->floor.value, "source",
                                                  kos_floor_source_to_string(n->floor.source), "warning",
                                                  n->floor.warning[0] ? n->floor.warning : NULL)
                                      : json_null();
        json_t *scrub = n->boot.n_hash_tree == 0
                                ? json_null()
                                : json_pack("{s:s, s:I, s:I, s:s?}", "state", scrub_state_name(n->scrub.state), "bytes",
                                            (json_int_t)n->scrub.report.bytes, "total",
                                            (json_int_t)n->scrub.report.total, "error",
                                            n->scrub.report.error.msg[0] ? n->scrub.report.error.msg : NULL);
        json_t *update = json_null();
        if (n->have_update_source) {
                uint64_t now = 0;
                (void)sd_event_now(n->event, CLOCK_MONOTONIC, &now);
                update = json_pack("{s:s, s:o, s:o}", "registry", n->update.registry, "last",
                                   n->last_poll[0] ? json_string(n->last_poll) : json_null(), "next_poll_in_s",
                                   n->next_poll_usec > now ? json_integer((json_int_t)((n->next_poll_usec - now) / 1000000))
                                                           : json_null());
        }
        json_t *datafs = json_pack("{s:s, s:s, s:s?}", "state", n->boot.data_state, "encryption",
                                   n->boot.data_encryption[0] ? n->boot.data_encryption : "none", "reason",
                                   n->boot.data_reason[0] ? n->boot.data_reason : NULL);
        return json_pack("{s:s, s:{s:s, s:s, s:I}, s:b, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:O}", "state",
                         node_state_name(n->state), "booted", "name", n->name, "id", n->id_hex, "version",
                         (json_int_t)n->version, "marked_good", n->marked_good, "app",
                         n->bus ? app_active_state(n) : "unknown", "fallback", fallback, "manifests", manifests,
                         "install", install, "scrub", scrub, "rollback_floor", floor, "update", update, "datafs",
                         datafs, "boot_kernel", n->boot_kernel ? n->boot_kernel : json_null());
}

static json_t *api_status(struct node *n, struct varlink_connection *c, json_t *parameters) {
        return json_pack("{s:o}", "parameters", status_json(n));
}

static json_t *api_hold(struct node *n, struct varlink_connection *c, json_t *parameters) {
        if (n->state != STARTING && n->state != HOLDING && n->state != INSTALLING)
                return reply_error("io.kos.Node.WrongState", "the app was started already");
        n->hold = true;
        if (n->state != INSTALLING) /* else continue_boot() holds once the installs are done */
                set_state(n, HOLDING);
        event("holding: the app waits for start-app");
        return REPLY_EMPTY();
}

static json_t *api_start_app(struct node *n, struct varlink_connection *c, json_t *parameters) {
        if (n->state != HOLDING && n->state != APP_FAILED)
                return reply_error("io.kos.Node.WrongState", "the app is not held");
        start_app(n);
        return REPLY_EMPTY();
}

static json_t *api_mark_good(struct node *n, struct varlink_connection *c, json_t *parameters) {
        if (mark_good(n) < 0)
                return reply_error("io.kos.Node.Failed", "cannot mark the boot good");
        return REPLY_EMPTY();
}

static json_t *api_check_update(struct node *n, struct varlink_connection *c, json_t *parameters) {
        if (!n->have_update_source)
                return reply_error("io.kos.Node.NoUpdateSource", "no usable " UPDATE_CONFIG_FILE);
        if (!n->have_imagefs || !n->have_keyring)
                return reply_error("io.kos.Node.Failed", "the ImageFS or the keyring is unavailable");
        if (n->job.running || n->state == INSTALLING || n->state == REBOOTING)
                return reply_error("io.kos.Node.WrongState", "an install runs, or the system reboots");
        n->poll_timer = sd_event_source_disable_unref(n->poll_timer);
        n->next_poll_usec = 0;
        if (start_pull(n, c) < 0)
                return reply_error("io.kos.Node.Failed", n->last_poll);
        return NULL; /* answered when the pull is done */
}

static json_t *api_reboot(struct node *n, struct varlink_connection *c, json_t *parameters) {
        request_reboot(n, "asked through the API");
        return REPLY_EMPTY();
}

/* Install and Activate both write active: never while an install runs. */
static json_t *check_can_change_active(struct node *n, json_t *parameters, const char *key, const char **ret_arg) {
        if (json_unpack(parameters, "{s:s}", key, ret_arg) < 0)
                return reply_error("org.varlink.service.InvalidParameter", key);
        if (!n->have_imagefs)
                return reply_error("io.kos.Node.Failed", "the ImageFS is not mounted");
        if (n->job.running)
                return reply_error("io.kos.Node.WrongState", "an install is running");
        return NULL;
}

/* Install through the API: the reply comes when the installer is done
 * (NULL here), so the loop goes on meanwhile. The path comes from root and
 * may be anywhere, but only a regular file is read, and opening does not wait. */
static json_t *install_bundle(struct node *n, struct varlink_connection *c, const char *path) {
        struct installer_callbacks callbacks = {.progress = on_install_progress, .done = on_install_done, .userdata = n};
        struct stat st;

        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return reply_error("io.kos.Node.BundleRefused", strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return reply_error("io.kos.Node.BundleRefused", "not a regular file");
        }
        n->job = (struct install_job){.source = FROM_API, .caller = c, .last_event_ns = kos_now_ns()};
        escape_name(path, n->job.name, sizeof n->job.name);
        event("installing bundle %s through the API", n->job.name);
        int r = installer_start(n->event, &n->img, &n->ring, n->id, fd, &callbacks);
        if (r < 0)
                return reply_error("io.kos.Node.Failed", strerror(-r));
        n->job.running = true;
        return NULL;
}

static json_t *activate_manifest(struct node *n, const char *name) {
        struct kos_active_list list;
        char json_name[KOS_NAME_MAX + 8], sig[KOS_NAME_MAX + 12];

        if (!kos_name_is_valid(name))
                return reply_error("org.varlink.service.InvalidParameter", "name");
        kos_manifest_file_names(name, json_name, sig);
        if (faccessat(n->img.manifests_fd, json_name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                return reply_error("io.kos.Node.NoSuchManifest", name);
        if (kos_active_read(&n->img, &list) < 0)
                list.n = 0; /* a missing or unreadable list starts afresh */
        if (kos_active_insert(&list, name, true) < 0 || kos_active_write(&n->img, &list) < 0)
                return reply_error("io.kos.Node.Failed", "cannot write active");
        event("manifest %s activated first through the API", name);
        return json_pack("{s:{}}", "parameters");
}

static json_t *api_install(struct node *n, struct varlink_connection *c, json_t *parameters) {
        const char *path = NULL;
        json_t *refused = check_can_change_active(n, parameters, "path", &path);
        return refused ? refused : install_bundle(n, c, path);
}

static json_t *api_activate(struct node *n, struct varlink_connection *c, json_t *parameters) {
        const char *name = NULL;
        json_t *refused = check_can_change_active(n, parameters, "name", &name);
        return refused ? refused : activate_manifest(n, name);
}

/* The methods of io.kos.Node (docs/node-manager.md). A call returns its
 * reply, or NULL when the reply comes later (an install, a pull). */
static const struct {
        const char *name;
        bool anyone; /* else root only */
        json_t *(*call)(struct node *n, struct varlink_connection *c, json_t *parameters);
} methods[] = {
        {"io.kos.Node.Status", true, api_status},
        {"io.kos.Node.FactoryReset", false, api_factory_reset},
        {"io.kos.Node.Hold", false, api_hold},
        {"io.kos.Node.StartApp", false, api_start_app},
        {"io.kos.Node.MarkGood", false, api_mark_good},
        {"io.kos.Node.CheckUpdate", false, api_check_update},
        {"io.kos.Node.Reboot", false, api_reboot},
        {"io.kos.Node.Activate", false, api_activate},
        {"io.kos.Node.Install", false, api_install},
};

json_t *node_api_call(struct varlink_connection *c, const char *method, json_t *parameters, void *userdata) {
        bool root = varlink_connection_uid(c) == 0;

        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                if (strcmp(method, methods[i].name) == 0)
                        return methods[i].anyone || root ? methods[i].call(userdata, c, parameters)
                                                         : reply_error("io.kos.Node.PermissionDenied",
                                                                       "only root may call this method");
        /* As before the table: a caller that is not root learns nothing of
         * which methods exist. */
        return root ? reply_error("org.varlink.service.MethodNotFound", method)
                    : reply_error("io.kos.Node.PermissionDenied", "only root may call this method");
}
