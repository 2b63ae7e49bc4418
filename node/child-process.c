/* SPDX-License-Identifier: MIT */
#include "child-process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int child_process_start(sd_event *event, struct child_process *c, void (*run)(void *arg, int report_fd), void *arg,
                        sd_event_io_handler_t on_report, void *userdata) {
        int fds[2];

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        c->pid = fork();
        if (c->pid < 0) {
                int r = -errno;
                close(fds[0]);
                close(fds[1]);
                return r;
        }
        if (c->pid == 0) {
                close(fds[0]);
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() == 1)
                        _exit(1); /* the parent is gone already */
                run(arg, fds[1]);
                _exit(1);
        }
        close(fds[1]);
        c->fd = fds[0];
        (void)fcntl(c->fd, F_SETFL, O_NONBLOCK);
        int r = sd_event_add_io(event, &c->source, c->fd, EPOLLIN, on_report, userdata);
        if (r < 0) {
                kill(c->pid, SIGKILL);
                (void)waitpid(c->pid, NULL, 0);
                close(c->fd);
        }
        return r;
}

void child_process_reap(struct child_process *c) {
        while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        c->source = sd_event_source_disable_unref(c->source);
        close(c->fd);
        c->fd = -1;
}
