# The workload image: the package and its locustfile.  One image for the three compose services
# (demo target, Locust master, Locust workers); scenarios/ and results/ are mounted, not baked in.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY workload ./workload
RUN pip install --no-cache-dir . && mkdir -p scenarios results

# 8089: Locust web UI (master); 5557: master <- workers; 8080/8081: demo target http/admin.
EXPOSE 8089 5557 8080 8081
# workload binds the web UI to 127.0.0.1 by default, which inside a container no one can reach:
# the image's default command says 0.0.0.0; publish it on the host's loopback
# (`docker run -p 127.0.0.1:8089:8089 workload:local`), the UI has no authentication.
CMD ["locust", "-f", "workload/main.py", "--web-host", "0.0.0.0"]
