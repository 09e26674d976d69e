// See include/mpishim.h. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are the
// addresses of global objects exported by libmpi (ompi_mpi_comm_world, ...); MPI_IN_PLACE is
// (void *)1 and MPI_STATUS_IGNORE is NULL. That is Open MPI's ABI (mpi.h of Open MPI 1.x-5.x),
// so this shim works with Open MPI only; MPICH and its derivatives are refused by name at load.

#include "mpishim.h"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef void *Handle;

static int (*p_init_thread)(int *, char ***, int, int *);
static int (*p_initialized)(int *);
static int (*p_finalize)(void);
static int (*p_abort)(Handle, int);
static int (*p_comm_rank)(Handle, int *);
static int (*p_comm_size)(Handle, int *);
static int (*p_comm_dup)(Handle, Handle *);
static int (*p_comm_set_errhandler)(Handle, Handle);
static int (*p_iallreduce)(const void *, void *, int, Handle, Handle, Handle, Handle *);
static int (*p_test)(Handle *, int *, void *);
static int (*p_error_string)(int, char *, int *);
static int (*p_get_library_version)(char *, int *);
static Handle h_comm_world, h_float, h_double, h_sum, h_errors_return;
static Handle comm;  // our duplicate of MPI_COMM_WORLD
static int loaded;

#define FM_IN_PLACE ((void *)1)
#define FM_THREAD_FUNNELED 1

int fm_mpi_load(const char *path, char *why, int whyLength) {
    if (loaded) return 0;
    const char *candidates[] = {path, "libmpi.so.40", "libmpi.so"};
    void *lib = NULL;
    char first[512] = "";
    for (int k = path ? 0 : 1; k < 3 && !lib; k++) {
        lib = dlopen(candidates[k], RTLD_NOW | RTLD_GLOBAL);  // global: Open MPI's plugins need its symbols
        if (!lib && !first[0]) snprintf(first, sizeof first, "%s", dlerror());
        if (path) break;
    }
    if (!lib) {
        snprintf(why, whyLength, "%s", first);
        return 1;
    }
    struct { void **slot; const char *name; } symbols[] = {
        {(void **)&p_init_thread, "MPI_Init_thread"}, {(void **)&p_initialized, "MPI_Initialized"},
        {(void **)&p_finalize, "MPI_Finalize"}, {(void **)&p_abort, "MPI_Abort"},
        {(void **)&p_comm_rank, "MPI_Comm_rank"}, {(void **)&p_comm_size, "MPI_Comm_size"},
        {(void **)&p_comm_dup, "MPI_Comm_dup"}, {(void **)&p_comm_set_errhandler, "MPI_Comm_set_errhandler"},
        {(void **)&p_iallreduce, "MPI_Iallreduce"}, {(void **)&p_test, "MPI_Test"},
        {(void **)&p_error_string, "MPI_Error_string"}, {(void **)&p_get_library_version, "MPI_Get_library_version"},
        {&h_comm_world, "ompi_mpi_comm_world"}, {&h_float, "ompi_mpi_float"}, {&h_double, "ompi_mpi_double"},
        {&h_sum, "ompi_mpi_op_sum"}, {&h_errors_return, "ompi_mpi_errors_return"},
    };
    for (size_t k = 0; k < sizeof symbols / sizeof symbols[0]; k++) {
        *symbols[k].slot = dlsym(lib, symbols[k].name);
        if (!*symbols[k].slot) {
            if (symbols[k].name[0] == 'o')
                snprintf(why, whyLength, "the MPI library has no '%s': it is not Open MPI (fergc supports Open MPI's ABI)",
                         symbols[k].name);
            else
                snprintf(why, whyLength, "the MPI library has no '%s' (MPI-3 or later is needed)", symbols[k].name);
            dlclose(lib);
            return 1;
        }
    }
    loaded = 1;
    return 0;
}

int fm_mpi_init(int *rank, int *size) {
    if (!loaded) return FM_NOT_LOADED;
    int already = 0, provided = 0, rc;
    if ((rc = p_initialized(&already))) return rc;
    if (!already && (rc = p_init_thread(NULL, NULL, FM_THREAD_FUNNELED, &provided))) return rc;
    if ((rc = p_comm_dup(h_comm_world, &comm))) return rc;
    if ((rc = p_comm_set_errhandler(comm, h_errors_return))) return rc;
    if ((rc = p_comm_rank(comm, rank))) return rc;
    return p_comm_size(comm, size);
}

int fm_mpi_finalize(void) { return loaded ? p_finalize() : FM_NOT_LOADED; }

void fm_mpi_abort(int code) {
    if (loaded) p_abort(h_comm_world, code);
}

int fm_mpi_iallreduce_sum_float(float *values, int count, void **request) {
    if (!loaded) return FM_NOT_LOADED;
    return p_iallreduce(FM_IN_PLACE, values, count, h_float, h_sum, comm, request);
}

int fm_mpi_iallreduce_sum_double(double *values, int count, void **request) {
    if (!loaded) return FM_NOT_LOADED;
    return p_iallreduce(FM_IN_PLACE, values, count, h_double, h_sum, comm, request);
}

int fm_mpi_test(void **request, int *done) {
    if (!loaded) return FM_NOT_LOADED;
    return p_test(request, done, NULL);
}

void fm_mpi_error_string(int code, char *buffer, int length) {
    if (length <= 0) return;
    buffer[0] = 0;
    if (code == FM_NOT_LOADED) { snprintf(buffer, length, "the MPI library is not loaded"); return; }
    char text[1024];  // MPI_MAX_ERROR_STRING is 256 in Open MPI
    int n = 0;
    if (loaded && p_error_string(code, text, &n) == 0) snprintf(buffer, length, "%.*s", n, text);
    else snprintf(buffer, length, "MPI error %d", code);
}

void fm_mpi_library_version(char *buffer, int length) {
    if (length <= 0) return;
    buffer[0] = 0;
    char text[8192];  // MPI_MAX_LIBRARY_VERSION_STRING
    int n = 0;
    if (loaded && p_get_library_version(text, &n) == 0) {
        char *newline = memchr(text, '\n', n);
        if (newline) n = (int)(newline - text);
        snprintf(buffer, length, "%.*s", n, text);
    }
}
