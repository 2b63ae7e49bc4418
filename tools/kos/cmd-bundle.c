/* SPDX-License-Identifier: MIT */
/* kos bundle create | install */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle-install.h"
#ifdef KOS_WITH_HOST
#include "bundle-write.h"
#endif
#include "active.h"
#include "kos.h"
#include "verify.h"

#ifdef KOS_WITH_HOST
/* Hashes each file and matches it to a blob of the manifest. */
static int match_components(const struct kos_manifest *m, char **files, size_t n, int *fds, uint8_t (*digests)[KOS_SHA256_LEN],
                            uint64_t *sizes) {
        struct kos_hash_job jobs[KOS_MANIFEST_MAX_BLOBS];
        const struct kos_blob *blobs[KOS_MANIFEST_MAX_BLOBS];
        const char *labels[KOS_MANIFEST_MAX_BLOBS];
        size_t n_blobs = kos_manifest_blobs(m, blobs, labels, ELEMENTSOF(blobs));
        struct progress p;

        for (size_t i = 0; i < n; i++) {
                struct stat st;
                fds[i] = kos_open_regular_at(AT_FDCWD, files[i], 0, &st);
                if (fds[i] < 0)
                        return fail(EXIT_USAGE, "cannot read %s: %s", files[i], file_error_string(fds[i]));
                jobs[i] = (struct kos_hash_job){.fd = fds[i], .size = (uint64_t)st.st_size, .copy_fd = -1, .compute_only = true};
        }
        progress_init(&p, "hashing");
        int r = kos_hash_jobs(jobs, n, progress_print, &p);
        progress_finish(&p);
        for (size_t i = 0; i < n; i++) {
                bool known = false;
                if (r < 0 || jobs[i].status != KOS_HASH_MATCH)
                        return fail(EXIT_USAGE, "cannot hash %s", files[i]);
                for (size_t b = 0; b < n_blobs; b++)
                        known = known || (memcmp(blobs[b]->sha256, jobs[i].digest, KOS_SHA256_LEN) == 0 && blobs[b]->size == jobs[i].size);
                for (size_t j = 0; j < i; j++)
                        if (memcmp(digests[j], jobs[i].digest, KOS_SHA256_LEN) == 0)
                                return fail(EXIT_USAGE, "%s is given twice", files[i]);
                if (!known)
                        return fail(EXIT_INVALID, "%s is not the kernel, initrd or a component of the manifest", files[i]);
                memcpy(digests[i], jobs[i].digest, KOS_SHA256_LEN);
                sizes[i] = jobs[i].size;
        }
        return EXIT_OK;
}

static int bundle_create(int argc, char **argv) {
        static const struct option options[] = {{"output", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'}, {}};
        _cleanup_free_ char *sig_path = NULL;
        struct kos_loaded_manifest loaded;
        const struct kos_manifest *m;
        const char *output = NULL;
        int fds[KOS_MANIFEST_MAX_BLOBS];
        uint8_t digests[KOS_MANIFEST_MAX_BLOBS][KOS_SHA256_LEN];
        uint64_t sizes[KOS_MANIFEST_MAX_BLOBS];
        int c, r, code;

        while ((c = getopt_long(argc, argv, "o:h", options, NULL)) >= 0) {
                if (c == 'h') {
                        printf("Usage: kos bundle create -o BUNDLE MANIFEST [FILE...]\n\n"
                               "Writes an update bundle: MANIFEST, MANIFEST.sig, then each FILE (the\n"
                               "kernel, initrd or component images the device may lack; each must be a\n"
                               "blob of the manifest). Blobs left out must already be on the device.\n"
                               "Format: docs/format.md, \"Update bundles\".\n");
                        return EXIT_OK;
                }
                if (c != 'o')
                        return usage_error("bundle create", "unknown option");
                output = optarg;
        }
        if (!output || argc - optind < 1)
                return usage_error("bundle create", "expected -o BUNDLE and MANIFEST");
        size_t n = (size_t)(argc - optind - 1);
        if (n > ELEMENTSOF(fds))
                return usage_error("bundle create", "too many files");
        const char *path = argv[optind];
        if (asprintf(&sig_path, "%s.sig", path) < 0)
                return fail(EXIT_USAGE, "out of memory");
        /* The signer's host: no keyring here, the device verifies. */
        if (kos_manifest_load_unverified_at(AT_FDCWD, path, sig_path, "", &loaded) < 0) {
                return fail_manifest_load(path, &loaded, "");
        }
        m = loaded.manifest;
        for (size_t i = 0; i < n; i++)
                fds[i] = -1;
        code = match_components(m, argv + optind + 1, n, fds, digests, sizes);
        if (code == EXIT_OK) {
                char tmp[4096];
                snprintf(tmp, sizeof tmp, "%s.tmp-%d", output, (int)getpid());
                _cleanup_close_ int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                r = out < 0 ? -errno : kos_bundle_write(out, loaded.json, loaded.json_len, loaded.sig, loaded.sig_len, fds, (const uint8_t(*)[KOS_SHA256_LEN])digests, sizes, n);
                if (r >= 0 && fsync(out) < 0)
                        r = -errno;
                if (r >= 0 && rename(tmp, output) < 0)
                        r = -errno;
                if (r < 0) {
                        unlink(tmp);
                        code = fail(EXIT_USAGE, "cannot write %s: %s", output, strerror(-r));
                } else
                        printf("bundle %s: manifest %s with %zu file(s)\n", output, m->name, n);
        }
        for (size_t i = 0; i < n; i++)
                kos_closep(&fds[i]);
        kos_loaded_manifest_done(&loaded);
        return code;
}
#else
/* The device's kos is built without lib/host/. */
static int bundle_create(int argc, char **argv) {
        return fail(EXIT_USAGE, "this kos is the device's, built without lib/host/: write bundles with kos on a host");
}
#endif


/* --running takes a manifest id (64 hex digits) or the name of an installed manifest. */
static int running_manifest_id(const struct kos_imagefs *img, const char *arg, uint8_t ret[static KOS_SHA256_LEN]) {
        if (kos_hex_decode(arg, strlen(arg), ret, KOS_SHA256_LEN) == 0)
                return EXIT_OK;
        int r = kos_imagefs_manifest_id(img, arg, ret);
        if (r < 0)
                return usage_error("bundle install", "--running %s: not a manifest id nor an installed manifest (%s)", arg,
                                   file_error_string(r));
        return EXIT_OK;
}

static int bundle_install(int argc, char **argv) {
        static const struct option options[] = {{"keyring", required_argument, NULL, 'k'}, {"tries", required_argument, NULL, 't'},
                                                {"keep", required_argument, NULL, 'K'},    {"running", required_argument, NULL, 'r'},
                                                {"help", no_argument, NULL, 'h'},          {}};
        struct kos_bundle_options o = {0};
        struct kos_bundle_result result;
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        struct kos_keyring ring;
        struct progress p;
        const char *keyring = NULL, *running = NULL;
        uint8_t running_id[KOS_SHA256_LEN];
        int c, r, code;

        while ((c = getopt_long(argc, argv, "k:t:K:r:h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        printf("Usage: kos bundle install --keyring DIR [--tries N] [--keep N] IMAGEFS BUNDLE\n\n"
                               "Installs an update bundle (- reads standard input): verifies the\n"
                               "manifest's signature first, streams each component in while hashing it,\n"
                               "skips those already present, then makes the new manifest first in\n"
                               "active, on trial for N boots (default 3), keeping N manifests active\n"
                               "(default 2; older ones are uninstalled and their components removed).\n"
                               "The manifest the device runs (--running, its id or installed name) and\n"
                               "the newest one marked good are never retired.\n"
                               "A bad bundle changes nothing (exit 1). Exit 0 when installed, also if\n"
                               "the clean-up afterwards failed (a warning says so). Safe to kill at any\n"
                               "point and to retry.\n");
                        return EXIT_OK;
                case 'k':
                        keyring = optarg;
                        break;
                case 't':
                        if (parse_count(optarg, 99, &o.tries) < 0)
                                return usage_error("bundle install", "--tries takes 1 to 99");
                        break;
                case 'K':
                        if (parse_count(optarg, KOS_ACTIVE_MAX, &o.keep) < 0)
                                return usage_error("bundle install", "--keep takes 1 to %d", KOS_ACTIVE_MAX);
                        break;
                case 'r':
                        running = optarg;
                        break;
                default:
                        return usage_error("bundle install", "unknown option");
                }
        }
        if (!keyring || argc - optind != 2)
                return usage_error("bundle install", "expected --keyring DIR, IMAGEFS and BUNDLE");
        if ((code = load_keyring_or_fail(keyring, &ring)) != EXIT_OK || (code = open_imagefs_or_fail(argv[optind], &img)) != EXIT_OK)
                return code;
        if (running && (code = running_manifest_id(&img, running, running_id)) != EXIT_OK) {
                kos_imagefs_close(&img);
                return code;
        }
        o.running_id = running ? running_id : NULL;
        const char *bundle = argv[optind + 1];
        _cleanup_close_ int fd = strcmp(bundle, "-") == 0 ? dup(STDIN_FILENO) : open(bundle, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                kos_imagefs_close(&img);
                return fail(EXIT_USAGE, "cannot open %s: %m", bundle);
        }
        progress_init(&p, "installing");
        o.progress = progress_print;
        o.userdata = &p;
        uint64_t start = kos_now_ns();
        r = kos_bundle_install(&img, &ring, fd, &o, &result);
        progress_finish(&p);
        kos_imagefs_close(&img);
        if (r == -EBADMSG)
                return fail(EXIT_INVALID, "bundle %s refused, nothing changed: %s", bundle, result.error.msg);
        if (r < 0)
                return fail(EXIT_USAGE, "installing %s failed: %s", bundle, strerror(-r));
        if (result.already_active) {
                printf("%s is installed and first in active already: nothing changed\n", result.name);
                return EXIT_OK;
        }
        if (result.warning[0])
                /* The install stands (active names it): exit 0, say what is left over. */
                fprintf(stderr, "kos: installed %s, but cleanup failed: %s (run 'kos gc' later)\n", result.name,
                        result.warning);
        double seconds = (double)(kos_now_ns() - start) / 1e9;
        printf("installed %s: %u component(s) added (%.1f MiB in %.2f s, %.0f MiB/s), %u already present; "
               "first in active, on trial%s\n", result.name, result.added, (double)result.bytes_added / 1048576.0, seconds,
               seconds > 0 ? (double)result.bytes_added / 1048576.0 / seconds : 0.0, result.skipped,
               result.removed_manifests ? "; older manifests retired" : "");
        return EXIT_OK;
}

int cmd_bundle(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "create") == 0)
                return bundle_create(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "install") == 0)
                return bundle_install(argc - 1, argv + 1);
        if (wants_help(argc, argv)) {
                printf("Usage: kos bundle create|install ...\n\n  create   write an update bundle\n"
                       "  install  install one into an ImageFS\n\nEach takes --help.\n");
                return EXIT_OK;
        }
        return usage_error("bundle", "expected create or install");
}
