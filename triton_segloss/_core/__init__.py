"""What every loss family uses: backend choice, argument checks, the accumulation-dtype
rule, the custom-op helper, the AOT spec registry and (``jit``, the only module here
that imports triton) shared device functions."""
