/* SPDX-License-Identifier: MIT */
/* kos-node-manager: the first KOS service systemd starts (Type=notify, with a
 * watchdog). It
 *   - installs update bundles staged in /data/kos/inbox/ (or on a partition
 *     labelled KOS-UPDATE) and reboots into them: the boot is intercepted;
 *   - holds, with kos.hold on the kernel command line or through its API,
 *     instead of starting the app;
 *   - otherwise asks systemd (over its private D-Bus socket, sd-bus) to start
 *     kos-app.target, follows the job, and marks the boot good once the
 *     target has stayed active for kos.settle seconds (default 30);
 *   - answers its Varlink API on /run/kos/node.sock (docs/node-manager.md);
 *     only root may call the methods that change anything.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "bootstate.h"
#include "bundle.h"
#include "early.h"
#include "manifest.h"
#include "varlink.h"

#define SOCKET_PATH "/run/kos/node.sock"
#define IMAGEFS_MOUNT "/run/kos/imagefs"
#define BOOT_JSON "/run/kos/boot.json"
#define INBOX "/data/kos/inbox"
#define UPDATE_MOUNT "/run/kos/update"
#define EVENTS "/data/kos/events"
#define KEYRING "/etc/kos/keyring"
#define APP_TARGET "kos-app.target"

enum state { STARTING, INSTALLING, HOLDING, STARTING_APP, SETTLING, RUNNING, APP_FAILED, REBOOTING };
static const char *const state_names[] = {"starting", "installing", "holding", "starting-app", "settling", "running",
                                          "app-failed", "rebooting"};

struct node {
        sd_event *event;
        sd_bus *bus;
        struct kos_imagefs img;
        struct kos_keyring ring;
        bool have_imagefs, have_keyring;
        char name[KOS_NAME_MAX + 1];
        char id_hex[KOS_SHA256_HEX_LEN + 1];
        uint8_t id[KOS_SHA256_LEN];
        long long version;
        enum state state;
        char app_job[256];
        unsigned settle;
        bool marked_good;
};

/* An event: on the console/journal, and appended to /data/kos/events when
 * the DataFS is there, so that a later boot can tell what happened. */
static void event(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void event(const char *format, ...) {
        char text[600];
        va_list ap;

        va_start(ap, format);
        vsnprintf(text, sizeof text, format, ap);
        va_end(ap);
        early_log("%s", text);
        FILE *f = fopen(EVENTS, "ae");
        if (f) {
                fprintf(f, "%lld %s\n", (long long)time(NULL), text);
                fflush(f);
                fsync(fileno(f));
                fclose(f);
        }
}

static void set_state(struct node *n, enum state s) {
        n->state = s;
        sd_notifyf(false, "STATUS=%s", state_names[s]);
}

static int read_boot_json(struct node *n) {
        json_error_t jerr;
        const char *name, *id;
        json_t *o = json_load_file(BOOT_JSON, 0, &jerr);

        if (!o || json_unpack(o, "{s:{s:s, s:s, s:I}}", "manifest", "name", &name, "id", &id, "version", &n->version) < 0 ||
            !kos_name_is_valid(name) || kos_hex_decode(id, strlen(id), n->id, KOS_SHA256_LEN) < 0) {
                json_decref(o);
                return -EBADMSG;
        }
        snprintf(n->name, sizeof n->name, "%s", name);
        snprintf(n->id_hex, sizeof n->id_hex, "%s", id);
        json_decref(o);
        return 0;
}

static int mount_imagefs(struct node *n) {
        const char *spec = early_cmdline_get("kos.imagefs");
        struct early_device dev;
        int r;

        if (!spec)
                return -ENXIO;
        if ((r = early_find_device(spec, 5000, &dev)) < 0)
                return r;
        const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
        mkdir(IMAGEFS_MOUNT, 0700);
        /* The loop devices of the components keep the ImageFS's read-only
         * superblock alive: mount it read-only too (sharing it), then make it
         * writable, which a second read-write mount could not (EBUSY). */
        if (mount(dev.path, IMAGEFS_MOUNT, dev.type, MS_RDONLY | flags, NULL) < 0 ||
            mount(NULL, IMAGEFS_MOUNT, NULL, MS_REMOUNT | flags, NULL) < 0)
                return -errno;
        if ((r = kos_imagefs_open(IMAGEFS_MOUNT, &n->img)) < 0)
                return r;
        n->have_imagefs = true;
        return 0;
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

static void request_reboot(struct node *n, const char *why) {
        event("rebooting: %s", why);
        set_state(n, REBOOTING);
        sync();
        systemd_start_unit(n, "reboot.target", "replace-irreversibly", NULL, 0);
}

static const char *app_active_state(struct node *n) {
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

static int mark_good(struct node *n) {
        int r = n->have_imagefs ? kos_boot_state_mark_good(&n->img, n->id) : -ENXIO;
        if (r < 0)
                event("cannot mark manifest %s good: %s", n->name, strerror(-r));
        else {
                n->marked_good = true;
                event("boot of manifest %s marked good", n->name);
        }
        return r;
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

static int on_settled(sd_event_source *s, uint64_t usec, void *userdata) {
        struct node *n = userdata;
        const char *state = app_active_state(n);

        char why[128];

        if (strcmp(state, "active") == 0) {
                set_state(n, RUNNING);
                mark_good(n);
        } else {
                snprintf(why, sizeof why, "%s is %s after %u s", APP_TARGET, state, n->settle);
                app_failed(n, why);
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

static int start_app(struct node *n) {
        set_state(n, STARTING_APP);
        event("starting %s", APP_TARGET);
        int r = systemd_start_unit(n, APP_TARGET, "replace", n->app_job, sizeof n->app_job);
        if (r < 0)
                set_state(n, APP_FAILED);
        return r;
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Installs the bundles of one directory, in name order, until one installs:
 * true when a reboot was requested. From the inbox (on the DataFS) each
 * bundle is moved to processed/ or rejected/; a KOS-UPDATE drive is read-only
 * to us, and a bundle on it that is installed already changes nothing. */
static bool process_bundles(struct node *n, const char *dir, bool move_after) {
        DIR *d = opendir(dir);
        char *names[64];
        size_t count = 0;
        bool rebooting = false;

        if (!d)
                return false;
        for (struct dirent *de; (de = readdir(d)) && count < ELEMENTSOF(names);) {
                size_t len = strlen(de->d_name);
                if (len > 5 && strcmp(de->d_name + len - 5, ".kosb") == 0 && de->d_name[0] != '.')
                        names[count++] = strdup(de->d_name);
        }
        closedir(d);
        qsort(names, count, sizeof names[0], compare_names);
        for (size_t i = 0; i < count; i++) {
                char path[512], done[512];
                struct kos_bundle_result result;
                struct kos_bundle_options o = {0};
                if (rebooting || !names[i]) {
                        free(names[i]);
                        continue;
                }
                snprintf(path, sizeof path, "%s/%s", dir, names[i]);
                set_state(n, INSTALLING);
                event("installing bundle %s", path);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                int r = fd < 0 ? -errno : kos_bundle_install(&n->img, &n->ring, fd, &o, &result);
                if (fd >= 0)
                        close(fd);
                if (r >= 0 && result.already_active)
                        event("manifest %s of %s is installed and active already", result.name, names[i]);
                else if (r >= 0)
                        event("installed manifest %s from %s: %u component(s) added, %u present", result.name, names[i],
                              result.added, result.skipped);
                else
                        event("bundle %s refused: %s", names[i], r == -EBADMSG ? result.error : strerror(-r));
                if (move_after && r < 0 && r != -EBADMSG) {
                        /* Not the bundle's fault (no space, I/O): keep it for the next boot. */
                        free(names[i]);
                        continue;
                }
                if (move_after) {
                        mkdir("/data/kos/processed", 0755);
                        mkdir("/data/kos/rejected", 0755);
                        snprintf(done, sizeof done, "/data/kos/%s/%s", r >= 0 ? "processed" : "rejected", names[i]);
                        if (rename(path, done) < 0)
                                unlink(path); /* never install the same file again */
                        sync();
                }
                if (r >= 0 && !result.already_active) {
                        request_reboot(n, "to boot the new manifest");
                        rebooting = true;
                }
                free(names[i]);
        }
        return rebooting;
}

/* The inbox on the DataFS, then a drive labelled KOS-UPDATE if one is there. */
static bool process_updates(struct node *n) {
        struct early_device dev;

        if (process_bundles(n, INBOX, true))
                return true;
        if (early_find_device("LABEL=KOS-UPDATE", 0, &dev) < 0)
                return false;
        mkdir(UPDATE_MOUNT, 0700);
        if (mount(dev.path, UPDATE_MOUNT, dev.type, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
                event("cannot mount the update drive %s: %m", dev.path);
                return false;
        }
        event("update drive %s found", dev.path);
        bool rebooting = process_bundles(n, UPDATE_MOUNT, false);
        umount(UPDATE_MOUNT);
        return rebooting;
}

/* ---- the Varlink API ---- */

static json_t *status_json(struct node *n) {
        struct kos_active_list active = {0};
        struct kos_boot_state st = {0};
        json_t *manifests = json_array(), *fallback = json_null();

        if (n->have_imagefs && kos_active_read(&n->img, &active) >= 0) {
                for (size_t i = 0; i < active.n; i++) {
                        char json_name[KOS_NAME_MAX + 8], sig[KOS_NAME_MAX + 12], state[32] = "none";
                        _cleanup_free_ char *data = NULL;
                        uint8_t id[KOS_SHA256_LEN];
                        size_t len;
                        if (!active.entries[i].name_valid)
                                continue;
                        kos_manifest_file_names(active.entries[i].name, json_name, sig);
                        if (kos_read_file_at(n->img.manifests_fd, json_name, KOS_MANIFEST_MAX, &data, &len) >= 0) {
                                kos_sha256(data, len, id);
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
        return json_pack("{s:s, s:{s:s, s:s, s:I}, s:b, s:s, s:o, s:o}", "state", state_names[n->state], "booted", "name",
                         n->name, "id", n->id_hex, "version", (json_int_t)n->version, "marked_good", n->marked_good, "app",
                         n->bus ? app_active_state(n) : "unknown", "fallback", fallback, "manifests", manifests);
}

static json_t *reply_error(const char *error, const char *message) {
        return json_pack("{s:s, s:{s:s}}", "error", error, "parameters", "message", message);
}

static json_t *dispatch(struct node *n, const char *method, json_t *parameters, bool root) {
        char message[400];

        if (strcmp(method, "io.kos.Node.Status") == 0)
                return json_pack("{s:o}", "parameters", status_json(n));
        if (!root)
                return reply_error("io.kos.Node.PermissionDenied", "only root may call this method");
        if (strcmp(method, "io.kos.Node.Hold") == 0) {
                if (n->state != STARTING && n->state != HOLDING)
                        return reply_error("io.kos.Node.WrongState", "the app was started already");
                set_state(n, HOLDING);
                event("holding: the app waits for start-app");
        } else if (strcmp(method, "io.kos.Node.StartApp") == 0) {
                if (n->state != HOLDING && n->state != APP_FAILED)
                        return reply_error("io.kos.Node.WrongState", "the app is not held");
                start_app(n);
        } else if (strcmp(method, "io.kos.Node.MarkGood") == 0) {
                if (mark_good(n) < 0)
                        return reply_error("io.kos.Node.Failed", "cannot mark the boot good");
        } else if (strcmp(method, "io.kos.Node.Reboot") == 0) {
                request_reboot(n, "asked through the API");
        } else if (strcmp(method, "io.kos.Node.Activate") == 0 || strcmp(method, "io.kos.Node.Install") == 0) {
                const char *arg = NULL;
                bool install = method[12] == 'I';
                if (json_unpack(parameters, "{s:s}", install ? "path" : "name", &arg) < 0)
                        return reply_error("org.varlink.service.InvalidParameter", install ? "path" : "name");
                if (!n->have_imagefs)
                        return reply_error("io.kos.Node.Failed", "the ImageFS is not mounted");
                if (install) {
                        struct kos_bundle_result result;
                        struct kos_bundle_options o = {0};
                        int fd = open(arg, O_RDONLY | O_CLOEXEC);
                        int r = fd < 0 ? -errno : kos_bundle_install(&n->img, &n->ring, fd, &o, &result);
                        if (fd >= 0)
                                close(fd);
                        snprintf(message, sizeof message, "%s", r == -EBADMSG ? result.error : strerror(-r));
                        if (r < 0)
                                return reply_error("io.kos.Node.BundleRefused", message);
                        event("installed manifest %s from %s through the API", result.name, arg);
                } else {
                        struct kos_active_list list;
                        char json_name[KOS_NAME_MAX + 8], sig[KOS_NAME_MAX + 12];
                        if (!kos_name_is_valid(arg))
                                return reply_error("org.varlink.service.InvalidParameter", "name");
                        kos_manifest_file_names(arg, json_name, sig);
                        if (faccessat(n->img.manifests_fd, json_name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                                return reply_error("io.kos.Node.NoSuchManifest", arg);
                        (void)kos_active_read(&n->img, &list); /* empty on error: a missing list starts afresh */
                        if (kos_active_insert(&list, arg, true) < 0 || kos_active_write(&n->img, &list) < 0)
                                return reply_error("io.kos.Node.Failed", "cannot write active");
                        event("manifest %s activated first through the API", arg);
                }
        } else
                return reply_error("org.varlink.service.MethodNotFound", method);
        return json_pack("{s:{}}", "parameters");
}

static int on_connection(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct node *n = userdata;
        struct ucred cred;
        socklen_t len = sizeof cred;
        struct timeval timeout = {2, 0};
        json_t *request = NULL, *reply;
        const char *method;
        json_t *parameters = NULL;

        int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0)
                return 0;
        /* A client that never finishes its request must not stall the manager. */
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        bool root = getsockopt(client, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == 0;
        if (varlink_read(client, &request) < 0 || json_unpack(request, "{s:s, s?o}", "method", &method, "parameters", &parameters) < 0)
                reply = reply_error("org.varlink.service.InvalidParameter", "not a Varlink call");
        else
                reply = dispatch(n, method, parameters ? parameters : json_object(), root);
        varlink_write(client, reply);
        json_decref(reply);
        json_decref(request);
        close(client);
        return 0;
}

static int listen_api(struct node *n) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = SOCKET_PATH};
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0)
                return -errno;
        unlink(SOCKET_PATH);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(SOCKET_PATH, 0666) < 0 || listen(fd, 8) < 0) {
                close(fd);
                return -errno;
        }
        return sd_event_add_io(n->event, NULL, fd, EPOLLIN, on_connection, n);
}

static int connect_systemd(struct node *n) {
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

int main(int argc, char **argv) {
        struct node n = {.img = KOS_IMAGEFS_NULL, .settle = 30};
        char error[512];
        int r;

        early_log_init("kos-node");
        early_cmdline_load();
        n.settle = early_cmdline_seconds("kos.settle", n.settle);
        if ((r = read_boot_json(&n)) < 0)
                early_log("cannot read %s: %s; was this system booted by KOS?", BOOT_JSON, strerror(-r));
        if ((r = mount_imagefs(&n)) < 0)
                event("cannot mount the ImageFS: %s; updates and mark-good are unavailable", strerror(-r));
        if (kos_keyring_load(KEYRING, &n.ring, error, sizeof error) < 0)
                event("%s; bundles cannot be installed", error);
        else
                n.have_keyring = true;
        if ((r = sd_event_default(&n.event)) < 0 || (r = sd_event_set_watchdog(n.event, true)) < 0 ||
            (r = connect_systemd(&n)) < 0 || (r = listen_api(&n)) < 0) {
                early_log("cannot set up: %s", strerror(-r));
                return 1;
        }
        event("Node Manager started on manifest %s version %lld", n.name, n.version);
        sd_notify(false, "READY=1");
        if (!(n.have_imagefs && n.have_keyring && process_updates(&n))) {
                if (early_cmdline_get("kos.hold")) {
                        set_state(&n, HOLDING);
                        event("kos.hold: the app waits for start-app");
                } else
                        start_app(&n);
        }
        r = sd_event_loop(n.event);
        return r < 0 ? 1 : 0;
}
