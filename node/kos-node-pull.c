/* SPDX-License-Identifier: MIT */
/* kos-node-pull: one pull from the registry of Node Manager's update source
 * (/etc/kos/update.conf), installed through kos_oci_pull(), the path of
 * every bundle. Node Manager's installer child executes it, so that the
 * daemon itself never links libcurl (nor needs it in the root to run): a
 * missing libcurl is a failed pull, never a dead Node Manager. Progress and
 * the result go to fd 3 as installer records (installer-record.h); lines
 * for people go to standard output (the journal).
 *
 *   kos-node-pull --config FILE --keyring DIR --imagefs DIR [--running SHA256]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "installer-record.h"
#include "oci.h"
#include "update-config.h"
#include "util.h"

#define PROGRESS_INTERVAL_NS (250 * 1000000ULL)

static uint64_t last_progress_ns;

static void report(const struct installer_record *rec) {
        /* Without the pipe (run by hand) there is nobody to tell. */
        if (kos_write_all(INSTALLER_REPORT_FD, rec, sizeof *rec) < 0)
                return;
}

static void on_progress(uint64_t done, uint64_t total, void *userdata) {
        uint64_t now = kos_now_ns();

        if (now - last_progress_ns < PROGRESS_INTERVAL_NS && done < total)
                return;
        last_progress_ns = now;
        report(&(struct installer_record){.done = done, .total = total});
}

static void on_note(const char *line, void *userdata) {
        printf("kos-node-pull: %s\n", line);
        fflush(stdout);
}

static int finish(int r, struct installer_record *rec, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int finish(int r, struct installer_record *rec, const char *format, ...) {
        va_list ap;

        if (format) {
                va_start(ap, format);
                kos_error_setv(&rec->result.error, r, format, ap);
                va_end(ap);
                printf("kos-node-pull: %s\n", rec->result.error.msg);
        }
        rec->final = 1;
        rec->r = r;
        report(rec);
        return r == 0 ? 0 : r == -EBADMSG ? 1 : 2;
}

static int read_text(const char *path, size_t cap, char **ret, size_t *ret_len) {
        return kos_read_file_at(AT_FDCWD, path, cap, ret, ret_len);
}

static int pull(const struct update_config *config, const char *keyring, const char *imagefs, const uint8_t *running_id,
                struct installer_record *rec) {
        _cleanup_free_ char *credentials = NULL;
        struct kos_oci_client *client = NULL;
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_keyring ring;
        struct kos_oci_ref ref;
        struct kos_error why = KOS_ERROR_NULL;
        size_t len;
        int r;

        if (kos_oci_ref_parse(config->registry, &ref, &why) < 0)
                return finish(-EINVAL, rec, "registry %s: %s", config->registry, why.msg);
        if (config->credentials_file[0]) {
                if ((r = read_text(config->credentials_file, 4096, &credentials, &len)) < 0)
                        return finish(r, rec, "cannot read %s: %s", config->credentials_file, strerror(-r));
                credentials[strcspn(credentials, "\r\n")] = '\0';
        }
        if (kos_keyring_load(keyring, &ring, &why) < 0)
                return finish(-ENOKEY, rec, "%s", why.msg);
        if ((r = kos_imagefs_open(imagefs, &img)) < 0)
                return finish(r, rec, "cannot open the ImageFS %s: %s", imagefs, strerror(-r));
        struct kos_oci_client_options o = {.credentials = credentials, .ca_file = config->ca_file[0] ? config->ca_file : NULL};
        if ((r = kos_oci_client_new(&ref, &o, &client)) < 0) {
                kos_imagefs_close(&img);
                return finish(r, rec, "out of memory");
        }
        struct kos_oci_pull_options po = {.install = {.progress = on_progress, .running_id = running_id}, .note = on_note};
        r = kos_oci_pull(client, &img, &ring, &po, &rec->result);
        if (r < 0 && r != -EBADMSG && !rec->result.error.msg[0])
                kos_error_set(&rec->result.error, r, "%s", kos_oci_client_error(client));
        kos_oci_client_free(client);
        kos_imagefs_close(&img);
        if (credentials)
                explicit_bzero(credentials, strlen(credentials));
        return finish(r, rec, NULL);
}

int main(int argc, char **argv) {
        static const struct option options[] = {{"config", required_argument, NULL, 'c'}, {"keyring", required_argument, NULL, 'k'},
                                                {"imagefs", required_argument, NULL, 'i'}, {"running", required_argument, NULL, 'r'},
                                                {}};
        const char *config_path = UPDATE_CONFIG_FILE, *keyring = NULL, *imagefs = NULL, *running = NULL;
        struct installer_record rec = {0};
        struct update_config config;
        uint8_t running_id[KOS_SHA256_LEN];
        _cleanup_free_ char *text = NULL;
        struct kos_error why = KOS_ERROR_NULL;
        size_t len;
        int c, r;

        while ((c = getopt_long(argc, argv, "c:k:i:r:", options, NULL)) >= 0) {
                switch (c) {
                case 'c': config_path = optarg; break;
                case 'k': keyring = optarg; break;
                case 'i': imagefs = optarg; break;
                case 'r': running = optarg; break;
                default: return finish(-EINVAL, &rec, "usage: kos-node-pull --config FILE --keyring DIR --imagefs DIR [--running SHA256]");
                }
        }
        if (!keyring || !imagefs || optind != argc)
                return finish(-EINVAL, &rec, "usage: kos-node-pull --config FILE --keyring DIR --imagefs DIR [--running SHA256]");
        if (running && kos_hex_decode(running, strlen(running), running_id, KOS_SHA256_LEN) < 0)
                return finish(-EINVAL, &rec, "--running takes a manifest id (64 hex digits)");
        if ((r = kos_read_file_at(AT_FDCWD, config_path, UPDATE_CONFIG_MAX, &text, &len)) < 0)
                return finish(r, &rec, "cannot read %s: %s", config_path, strerror(-r));
        if (update_config_parse(text, len, &config, &why) < 0)
                return finish(-EINVAL, &rec, "%s: %s", config_path, why.msg);
        printf("kos-node-pull: checking %s\n", config.registry);
        fflush(stdout);
        return pull(&config, keyring, imagefs, running ? running_id : NULL, &rec);
}
