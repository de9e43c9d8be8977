/*
 * healthprobe: a container health check for the distroless execrole image.
 *
 * The runtime image has no shell, curl or wget, and ECS container health checks run a command inside the
 * container, so this tiny static program does one thing: GET http://127.0.0.1:PORT/PATH over plain HTTP/1.0 and
 * exit 0 when the status line says 200, 1 otherwise (refused, timed out, other status). It speaks only to the
 * loopback address, reads no file, resolves no name and links statically, so it adds no library to the image.
 *
 *   healthprobe [PORT [PATH]]      defaults: 9464 /healthz
 *
 * It deliberately does not parse headers or bodies: the daemon's /healthz answers 200 while the process is alive.
 * Replace it with an `execrole` subcommand if the binary ever grows one.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *port_text = argc > 1 ? argv[1] : "9464";
    const char *path = argc > 2 ? argv[2] : "/healthz";
    char *end = NULL;
    long port = strtol(port_text, &end, 10);
    if (end == port_text || *end != '\0' || port < 1 || port > 65535 || path[0] != '/') {
        fprintf(stderr, "usage: healthprobe [PORT [PATH]]\n");
        return 2;
    }

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("healthprobe: socket");
        return 1;
    }
    struct timeval timeout = {.tv_sec = 3, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("healthprobe: connect");
        close(fd);
        return 1;
    }

    char request[512];
    int len = snprintf(request, sizeof request, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    if (len <= 0 || (size_t)len >= sizeof request) {
        fprintf(stderr, "healthprobe: path too long\n");
        close(fd);
        return 2;
    }
    for (int sent = 0; sent < len;) {
        ssize_t n = send(fd, request + sent, (size_t)(len - sent), 0);
        if (n <= 0) {
            perror("healthprobe: send");
            close(fd);
            return 1;
        }
        sent += (int)n;
    }

    /* The status line is "HTTP/1.x 200 ...": read until its first 12 bytes are in. */
    char status[64];
    size_t got = 0;
    while (got < 12) {
        ssize_t n = recv(fd, status + got, sizeof status - 1 - got, 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    status[got] = '\0';
    if (got >= 12 && strncmp(status, "HTTP/1.", 7) == 0 && strncmp(status + 8, " 200", 4) == 0) {
        return 0;
    }
    fprintf(stderr, "healthprobe: unhealthy answer from 127.0.0.1:%ld%s\n", port, path);
    return 1;
}
