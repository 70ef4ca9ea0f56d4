// Scalar activation functions shared by unary.comp and glu.comp.

float at_silu(float x)
{
    // exp(-x) overflows to +inf for very negative x, giving x / inf = -0 as it should.
    return x / (1.0 + exp(-x));
}

float at_gelu_quick(float x)
{
    return x / (1.0 + exp(-1.702 * x));
}

// tanh approximation: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed
// as x * sigmoid(2u), which is the same function without 1 + tanh's cancellation for
// negative x (and without tanh(), which may return NaN for large |u| on some drivers).
float at_gelu_tanh(float x)
{
    const float u = 0.7978845608028654 * x * (1.0 + 0.044715 * x * x);
    return x / (1.0 + exp(-2.0 * u));
}

// tanh(x) is +-1 in float beyond |x| = 9.1; clamping first keeps drivers that evaluate
// it as a ratio of exponentials from dividing inf by inf.
float at_tanh(float x)
{
    return tanh(clamp(x, -10.0, 10.0));
}

// Exact GELU, 0.5 x (1 + erf(x / sqrt(2))). GLSL has no erf: 1 + erf(z) is evaluated as
// erfc(-z) (or 2 - erfc(z)) with the Chebyshev-fitted erfc of Numerical Recipes
// (erfcc, fractional error below 1.2e-7 everywhere), so the result keeps a relative
// error near float precision even deep in the negative tail where 1 + erf(z) -> 0.
float at_gelu_erf(float x)
{
    const float z = abs(x) * 0.7071067811865476;
    const float t = 1.0 / (1.0 + 0.5 * z);
    const float poly =
        -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
        t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
        t * (-0.82215223 + t * 0.17087277))))))));
    const float erfc_z = t * exp(-z * z + poly);
    return 0.5 * x * (x >= 0.0 ? 2.0 - erfc_z : erfc_z);
}
