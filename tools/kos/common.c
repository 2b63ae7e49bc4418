/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kos.h"
#include "tpm.h"

int fail(int code, const char *format, ...) {
        va_list ap;

        fputs("kos: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        return code;
}

int usage_error(const char *command, const char *format, ...) {
        va_list ap;

        fprintf(stderr, "kos %s: ", command);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'kos %s --help'.\n", command);
        return EXIT_USAGE;
}

bool wants_help(int argc, char **argv) {
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
                        return true;
        return false;
}

void progress_init(struct progress *p, const char *what) {
        *p = (struct progress){.start_ns = kos_now_ns(), .what = what};
}

void progress_print(uint64_t done, uint64_t total, void *userdata) {
        struct progress *p = userdata;

        if (!isatty(STDERR_FILENO) || kos_now_ns() - p->start_ns < 1000000000ull || total == 0)
                return;
        fprintf(stderr, "\r%s: %llu/%llu MiB (%u%%)", p->what, (unsigned long long)(done >> 20),
                (unsigned long long)(total >> 20), (unsigned)(done * 100 / total));
        p->shown = true;
}

void progress_finish(struct progress *p) {
        if (p->shown)
                fputc('\n', stderr);
        p->shown = false;
}

const char *file_error_string(int r) {
        if (r == -EBADFD)
                return "not a regular file";
        if (r == -ELOOP)
                return "a symbolic link";
        if (r == -EFBIG)
                return "too large";
        return strerror(-r);
}

int fail_manifest_load(const char *path, struct kos_loaded_manifest *loaded, const char *hint) {
        bool unreadable = loaded->reason == KOS_REASON_IO_ERROR || loaded->reason == KOS_REASON_MANIFEST_MISSING;
        int code = fail(unreadable ? EXIT_USAGE : EXIT_INVALID, "%s: %s: %s%s", path, kos_reason_to_string(loaded->reason),
                        loaded->error.msg, hint);
        kos_loaded_manifest_done(loaded);
        return code;
}

int read_path(const char *path, size_t cap, char **ret, size_t *ret_len) {
        return kos_read_file_at(AT_FDCWD, path, cap, ret, ret_len);
}

int open_imagefs_or_fail(const char *path, struct kos_imagefs *ret) {
        int r = kos_imagefs_open(path, ret);

        if (r == -ENOTDIR)
                return fail(EXIT_USAGE, "%s is not an ImageFS (no components/ or manifests/); create one with 'kos imagefs init %s'",
                            path, path);
        if (r < 0)
                return fail(EXIT_USAGE, "cannot open ImageFS %s: %s", path, strerror(-r));
        return EXIT_OK;
}

int load_keyring_or_fail(const char *dir, struct kos_keyring *ret) {
        struct kos_error error = KOS_ERROR_NULL;

        if (kos_keyring_load(dir, ret, &error) < 0)
                return fail(EXIT_USAGE, "%s", error.msg);
        return EXIT_OK;
}

int parse_count(const char *arg, unsigned max, unsigned *ret) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(arg, &end, 10);
        if (errno || *end || v < 1 || v > max)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

int open_tpm_or_fail(struct kos_tpm *t) {
        int r = kos_tpm_open(t);
        if (r == -ENODEV)
                return fail(EXIT_USAGE, "no TPM (set KOS_TPM to a TPM device or swtpm socket)");
        if (r < 0)
                return fail(EXIT_USAGE, "cannot open the TPM %s: %s", t->path, strerror(-r));
        return EXIT_OK;
}

/* Runs argv; with capture, its standard output goes there (up to size). */
int run_program(char *const argv[], char *capture, size_t size) {
        int pipefd[2] = {-1, -1}, status;

        if (capture && pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                if (capture)
                        dup2(pipefd[1], STDOUT_FILENO);
                else
                        dup2(STDERR_FILENO, STDOUT_FILENO);
                execvp(argv[0], argv);
                fprintf(stderr, "kos: cannot run %s: %m\n", argv[0]);
                _exit(127);
        }
        if (capture) {
                size_t len = 0;
                ssize_t n;
                close(pipefd[1]);
                while (len + 1 < size && (n = read(pipefd[0], capture + len, size - 1 - len)) > 0)
                        len += (size_t)n;
                capture[len] = '\0';
                close(pipefd[0]);
        }
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}
