rule prepare_data:
    output:
        P.manifest,
    params:
        spec=spec(C.data_spec(CFG)),
    log:
        f"{P.logs}/prepare_data.log",
    benchmark:
        f"{P.benchmarks}/prepare_data.tsv"
    shell:
        "{PY} -m genreview prepare-data --spec {params.spec:q} --manifest {output} > {log} 2>&1"
