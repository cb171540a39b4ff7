# syntax=docker/dockerfile:1
# MET Audit's Airflow image: the official Airflow 3 image plus the project's pinned
# requirements and the metaudit package, installed at build time (never through
# _PIP_ADDITIONAL_REQUIREMENTS, which reinstalls at every container start).
#
#   docker build -t metaudit-airflow:0.1.0 .
#
# The Airflow version here must equal the apache-airflow pin in requirements.txt
# (tests/integration/test_compose.py checks it).
FROM apache/airflow:3.3.2-python3.11

ARG AIRFLOW_VERSION=3.3.2

# The official image installs Python packages as the airflow user (into its user site).
USER airflow

COPY --chown=airflow:0 requirements.txt /opt/metaudit/requirements.txt
# Naming apache-airflow too keeps pip from up- or downgrading the base image's Airflow.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/metaudit/requirements.txt

# The core package (a regular install: the image needs no source tree to run).
COPY --chown=airflow:0 pyproject.toml README.md /opt/metaudit/
COPY --chown=airflow:0 include/ /opt/metaudit/include/
RUN pip install --no-cache-dir --no-deps /opt/metaudit

# DAGs and plugins, baked in for deployments without mounts (Kubernetes);
# docker-compose.yaml mounts the working tree over them for development. The rulebook's
# suites are package data of metaudit: installed above, found without a setting.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/

# An installed metaudit has no checkout around it to keep data/ in: name the folder.
ENV METAUDIT_DATA_DIR=/opt/airflow/data

RUN mkdir -p /opt/airflow/data /opt/airflow/config
