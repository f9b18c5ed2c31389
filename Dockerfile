# The workload image: the package and its locustfile.  One image for the three compose services
# (demo target, Locust master, Locust workers); scenarios/ and results/ are mounted, not baked in.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY workload ./workload
RUN pip install --no-cache-dir . && mkdir -p scenarios results

# 8089: Locust web UI (master); 5557: master <- workers; 8080/8081: demo target http/admin.
EXPOSE 8089 5557 8080 8081
CMD ["locust", "-f", "workload/main.py"]
