/* Sharing variables with variable scopes, the seed's conv_relu example.
 *
 * conv_relu makes its variables with em_get_variable; called twice without
 * scopes it fails with TensorFlow's clear error. my_image_filter puts its two
 * conv_relu calls in scopes "conv1" and "conv2"; calling it under scope
 * "model" twice shares the four variables, either by reopening "model" with
 * reuse (way 1) or by em_reuse_variables() inside it (way 2). */
#include <ember.h>

#include <stdio.h>

/* The variables each conv_relu call used, in call order. */
static em_tensor *used[8];
static int nused;

static em_tensor *conv_relu(em_tensor *input, em_shape kernel_shape, em_shape bias_shape) {
    em_tensor *weights = em_get_variable("weights", EM_F32, kernel_shape, EM_INIT_NORMAL(0, 1));
    em_tensor *biases = em_get_variable("biases", EM_F32, bias_shape, EM_INIT_CONST(0));
    if (nused + 2 <= 8) {
        used[nused++] = weights;
        used[nused++] = biases;
    }
    em_tensor *conv = em_conv2d(input, weights, NULL, EM_PAD_SAME, NULL);
    return em_relu(em_add(conv, biases));
}

static em_tensor *my_image_filter(em_tensor *input_images) {
    em_variable_scope_begin("conv1", EM_REUSE_INHERIT);
    /* Variables created here are named "model/conv1/weights", "model/conv1/biases". */
    em_tensor *relu1 = conv_relu(input_images, EM_SHAPE(5, 5, 32, 32), EM_SHAPE(32));
    em_variable_scope_end();
    em_variable_scope_begin("conv2", EM_REUSE_INHERIT);
    em_tensor *out = conv_relu(relu1, EM_SHAPE(5, 5, 32, 32), EM_SHAPE(32));
    em_variable_scope_end();
    return out;
}

/* Prints the variables the two my_image_filter calls used side by side;
 * returns 0 if both used the same four and no others exist. */
static int show_sharing(const char *title, em_tensor *output1, em_tensor *output2) {
    char s1[64], s2[64];
    printf("%s: outputs %s and %s\n", title, em_shape_str(em_tensor_shape(output1), s1, sizeof s1),
           em_shape_str(em_tensor_shape(output2), s2, sizeof s2));
    int same = nused == 8;
    for (int i = 0; i < 4 && same; i++) {
        printf("  %-20s call 1: %p  call 2: %p\n", em_variable_name(used[i]), (void *)used[i], (void *)used[i + 4]);
        same = used[i] == used[i + 4];
    }
    int total = em_global_variables(NULL, 0);
    printf("  both calls used the same variables: %s; variables in existence: %d\n\n", same ? "yes" : "no", total);
    nused = 0;
    return same && total == 4 ? 0 : -1;
}

static int fail(const char *what) {
    fprintf(stderr, "conv_scopes: %s: %s\n", what, em_last_error() ? em_last_error() : "unknown error");
    return 1;
}

int main(void) {
    em_set_seed(1);
    em_tensor *input1 = em_random_normal(EM_F32, EM_SHAPE(1, 10, 10, 32), 0, 1);
    em_tensor *input2 = em_random_normal(EM_F32, EM_SHAPE(1, 20, 20, 32), 0, 1);

    /* Without scopes: the second call cannot know whether to make new variables or share. */
    em_tensor *x = conv_relu(input1, EM_SHAPE(5, 5, 32, 32), EM_SHAPE(32));
    if (!x) return fail("first conv_relu");
    x = conv_relu(x, EM_SHAPE(5, 5, 32, 32), EM_SHAPE(32));
    if (x || !em_last_error()) return fail("the second conv_relu without scopes should fail");
    printf("without scopes, the second conv_relu fails:\n  %s\n\n", em_last_error());
    em_clear_error();
    em_variables_release();
    nused = 0;

    /* Way 1: reopen "model" with reuse. */
    em_variable_scope_begin("model", EM_REUSE_INHERIT);
    em_tensor *output1 = my_image_filter(input1);
    em_variable_scope_end();
    em_variable_scope_begin("model", EM_REUSE_TRUE);
    em_tensor *output2 = my_image_filter(input2);
    em_variable_scope_end();
    if (!output1 || !output2) return fail("way 1");
    if (show_sharing("way 1, reopening \"model\" with reuse=EM_REUSE_TRUE", output1, output2))
        return fail("way 1 did not share");
    em_variables_release();

    /* Way 2: em_reuse_variables() for the rest of the scope. */
    em_variable_scope_begin("model", EM_REUSE_INHERIT);
    output1 = my_image_filter(input1);
    em_reuse_variables();
    output2 = my_image_filter(input2);
    em_variable_scope_end();
    if (!output1 || !output2) return fail("way 2");
    if (show_sharing("way 2, em_reuse_variables() inside \"model\"", output1, output2)) return fail("way 2 did not share");

    /* Reusing what was never made is an error too. */
    em_variable_scope_begin("other", EM_REUSE_TRUE);
    if (my_image_filter(input1)) return fail("reusing missing variables should fail");
    em_variable_scope_end();
    printf("reusing in a scope that made nothing fails:\n  %s\n", em_last_error());
    em_clear_error();
    em_shutdown();
    return 0;
}
