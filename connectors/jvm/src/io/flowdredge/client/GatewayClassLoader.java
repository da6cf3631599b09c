package io.flowdredge.client;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.net.URL;
import java.net.URLClassLoader;

/**
 * Makes PyFlink's Java gateway find classes through one class loader, whichever of its threads
 * serves a call. py4j looks a class up through the context class loader of the thread that
 * serves the call, and PyFlink's add_jars sets that of one thread only; a call that py4j sends
 * over another connection (it opens one when two Python threads use the gateway at once, a
 * garbage collector's release of a Java object among them) then did not find the jars' classes.
 *
 * <p>Installed as py4j's class loading strategy (a proxy, so that the adapters compile without
 * PyFlink's shaded py4j). One loader for the process, later jars added to it: py4j keeps what
 * it found by class name (its static methods), so a second loader would mix the classes of both.
 */
public final class GatewayClassLoader implements InvocationHandler {
    private static final String PY4J = "org.apache.flink.api.python.shaded.py4j.reflection.";

    /** The jars' loader; addURL public, for the jars of a later call. */
    public static final class Jars extends URLClassLoader {
        Jars(URL[] urls, ClassLoader parent) {
            super(urls, parent);
        }

        @Override
        public void addURL(URL url) {
            super.addURL(url);
        }
    }

    private final ClassLoader loader;

    private GatewayClassLoader(ClassLoader loader) {
        this.loader = loader;
    }

    /** From now on the gateway resolves every class name through a loader of {@code urls}. */
    public static Jars install(URL[] urls, ClassLoader parent) throws ReflectiveOperationException {
        Jars jars = new Jars(urls, parent);
        Class<?> strategy = Class.forName(PY4J + "ClassLoadingStrategy");
        Object proxy = Proxy.newProxyInstance(strategy.getClassLoader(), new Class<?>[] {strategy},
                new GatewayClassLoader(jars));
        Class.forName(PY4J + "ReflectionUtil").getMethod("setClassLoadingStrategy", strategy)
                .invoke(null, proxy);
        return jars;
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
        switch (method.getName()) {
            case "classForName":
                return Class.forName((String) args[0], true, loader);
            case "getClassLoader":
                return loader;
            case "equals":
                return proxy == args[0];
            case "hashCode":
                return System.identityHashCode(proxy);
            case "toString":
                return "GatewayClassLoader(" + loader + ")";
            default:
                throw new UnsupportedOperationException(method.getName());
        }
    }
}
